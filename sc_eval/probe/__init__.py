"""Classification on frozen encoders: the paper's linear probe, k-shot and LiT zero-shot.

Modules: ``metrics`` (top-1/top-5/mean per-class recall), ``datasets`` (ImageFolder, HF
datasets, the embedded world; features through the shared cache), ``linear`` (BatchNorm + Linear
probe and L-BFGS logistic regression with a weight-decay sweep), ``fewshot`` (k examples per
class over seeds), ``pairs`` and ``lit`` (LiT: frozen tower, new projection, text tower from
scratch), ``templates`` (CLIP's ImageNet prompts). Importing this package imports no torch.
"""
