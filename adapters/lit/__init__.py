"""LiT zero-shot classification (the paper's Table 3): a projection and a text tower trained on
image-text pairs against a frozen image tower (``model``), the pairs' features (``pairs``), CLIP's
ImageNet prompt templates (``templates``), run by `sc-eval zeroshot` (``command``: its flags;
``pipeline``: training or loading LiT, then classifying)."""
