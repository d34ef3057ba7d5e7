"""sc-eval: SuperClass pretraining and its downstream evaluation protocol.

Importing this package is cheap: torch, transformers and friends are imported inside the
functions that need them.
"""
__version__ = "0.1.0"


def load_encoder(spec, config=None, device="cpu"):
    """Load a vision encoder from a spec; see :mod:`sc_eval.encoders`."""
    from sc_eval.encoders import load_encoder as _load

    return _load(spec, config=config, device=device)


__all__ = ["load_encoder", "__version__"]
