"""Vision tower configs and their timm construction (see :mod:`sc_eval.models.vit`).

Importing this package does not import torch or timm: ``list_models`` only reads the configs
folder, so ``sc-eval ls`` stays instant.
"""
from sc_eval.models.vit import (
    CONFIG_DIR,
    TIMM_ARCHITECTURE,
    count_params,
    create_vit,
    create_vit_for_loading,
    list_models,
    normalize_config,
    resolve_config,
    num_patches,
    timm_model_args,
    timm_pretrained_cfg,
    vit_config,
)

__all__ = [
    "CONFIG_DIR",
    "TIMM_ARCHITECTURE",
    "count_params",
    "create_vit",
    "create_vit_for_loading",
    "list_models",
    "normalize_config",
    "resolve_config",
    "num_patches",
    "timm_model_args",
    "timm_pretrained_cfg",
    "vit_config",
]
