"""What ``--precision fp32|bf16|fp16`` means on a device: the one place that checks the flag and
turns it into an autocast context.

Run commands compute under :func:`autocast`: matrix products and convolutions in the chosen
dtype, softmax, norms and losses in float32, as torch's autocast rules say; the weights stay
float32 unless a command loads them in half precision itself (a 7B LLM, see
:func:`weight_dtype`). A precision the device cannot compute in is refused with the flag named,
instead of a run that silently stays in float32:

- fp16 needs a GPU: torch's CPU autocast has no fast float16 path, and without loss scaling
  float16 gradients underflow (bf16 has float32's range and works on CPUs, AMX ones fast);
- bf16 on a CUDA GPU that cannot compute in bfloat16 (before Ampere) is refused too;
- training in fp16 needs loss scaling (:func:`grad_scaler`), which runs on CUDA: fp16 training
  elsewhere (Apple's MPS) is refused, while fp16 evaluation there is allowed.
"""
from __future__ import annotations

import contextlib

from sc_eval.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")


def _device_type(device) -> str:
    return str(device).split(":")[0]


def check_precision(precision: str, device, training: bool = False) -> None:
    """ConfigError naming ``--precision`` when ``device`` cannot compute in ``precision`` (or,
    with ``training``, cannot train in it)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    dev = _device_type(device)
    if precision == "fp16" and dev == "cpu":
        raise ConfigError("--precision fp16 needs a GPU (float16 autocast has no fast CPU path and its "
                          "gradients underflow without loss scaling); use --precision bf16 or fp32 on the CPU")
    if precision == "fp16" and training and dev != "cuda":
        raise ConfigError(f"--precision fp16: training in float16 needs loss scaling, which sc-eval runs on CUDA "
                          f"only; on {dev} train with --precision bf16 or fp32 (fp16 evaluation is fine there)")
    if precision == "bf16" and dev == "cuda":
        import torch

        if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"--precision bf16: {torch.cuda.get_device_name()} cannot compute in bfloat16; "
                              "use --precision fp16 or fp32")


def compute_dtype(precision: str):
    """The torch dtype matrix products run in under ``precision``."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def weight_dtype(precision: str, device):
    """The dtype to hold a large frozen model's weights in: half precision when asked for (a 7B
    LLM in bf16 takes 13.5 GB instead of 27), float32 otherwise."""
    check_precision(precision, device)
    return compute_dtype(precision)


def autocast(device, precision: str):
    """``torch.autocast`` for ``precision`` on ``device`` (a no-op context for fp32)."""
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(_device_type(device), dtype=compute_dtype(precision))


def grad_scaler(device, precision: str):
    """Loss scaling for fp16 training on CUDA (a disabled scaler otherwise: its calls pass through);
    fp16 training on any other device is refused."""
    import torch

    check_precision(precision, device, training=True)

    return torch.amp.GradScaler("cuda", enabled=precision == "fp16" and _device_type(device) == "cuda")
