"""Classifiers on frozen features: the paper's linear probe (``linear``: BatchNorm + Linear, and
L-BFGS logistic regression with a weight-decay sweep) and k-shot classification (``fewshot``),
run by `sc-eval probe` (``command``: its flags; ``pipeline``: features, fits, results).
Importing this package imports nothing heavy: the command's flags read the constant below."""

DEFAULT_FEWSHOT_WD = 1e-1  # k-shot L2 strength on standardised features
