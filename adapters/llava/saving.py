"""The adapter directory: what `--adapter DIR` reloads and what gets exported.

    adapter/
      config.json               LlavaConfig (encoder spec + fingerprint, select layer, template,
                                projector spec, LLM path, LoRA settings)
      projector.safetensors     the projector (sc-eval's own key names)
      mm_projector.bin          the same weights under LLaVA's keys, torch.save of a tensor dict
                                (the final projector; the stage-1 one, LLaVA's
                                --pretrain_mm_mlp_adapter, is <run>/checkpoints/stage1/mm_projector.bin)
      lora/                     PEFT adapter (adapter_config.json + adapter_model.safetensors)
      llm/                      full fine-tuning only: the whole LLM + tokenizer
      merged_llm/               --merge-lora only: LoRA merged into the LLM, + tokenizer

Written into a temporary sibling directory and renamed into place, so a crash never leaves a
half-written adapter behind.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from peft import PeftModel
from safetensors.torch import load_file

from sc_eval.adapters.llava.model import LlavaConfig, build, load_llm
from sc_eval.adapters.llava.projector import llava_state_dict
from sc_eval.errors import CheckpointError, ConfigError
from sc_eval.io import atomic_directory, atomic_save_safetensors, atomic_torch_save, atomic_write_json
from sc_eval.runtime.artefacts import check_hf_model_dir, check_safetensors, read_json_object, require_dir
from sc_eval.runtime.fingerprint import same

log = logging.getLogger(__name__)


def _is_peft(llm) -> bool:
    return hasattr(llm, "peft_config")


def save_adapter(model, out_dir, merge_lora: bool = False) -> Path:
    """Write ``model``'s trained parts to ``out_dir`` (replacing it atomically)."""
    out = Path(out_dir)
    cfg = model.config
    with atomic_directory(out) as tmp:
        atomic_write_json(tmp / "config.json", dataclasses.asdict(cfg))
        atomic_save_safetensors(tmp / "projector.safetensors", model.projector.state_dict())
        atomic_torch_save(tmp / "mm_projector.bin", llava_state_dict(model.projector))
        if _is_peft(model.llm):
            model.llm.save_pretrained(tmp / "lora")
        elif cfg.full_finetune:
            model.llm.save_pretrained(tmp / "llm")
            model.tokenizer.save_pretrained(tmp / "llm")
        if merge_lora:
            if not _is_peft(model.llm):
                raise ConfigError("--merge-lora: this model has no LoRA weights to merge")
            # merge_and_unload folds the LoRA deltas into the base weights in place; the model
            # keeps producing the same outputs, it just has no separate adapter afterwards.
            merged = model.llm.merge_and_unload()
            merged.save_pretrained(tmp / "merged_llm")
            model.tokenizer.save_pretrained(tmp / "merged_llm")
            model.llm = merged
    log.info("adapter written to %s", out)
    return out


WHAT = "`sc-eval llava --adapter` takes a directory written by `sc-eval llava` (<run>/adapter); copy it whole"


def check_adapter(adapter_dir) -> dict:
    """Every file of a LLaVA adapter directory present and whole (see `sc_eval.runtime.artefacts`), before
    any model is built; returns its config. Another command's artefact is named as such."""

    adir = require_dir(adapter_dir, WHAT)
    if not (adir / "config.json").exists():
        raise CheckpointError(f"--adapter {adir}: no config.json; {WHAT}")
    raw = read_json_object(adir / "config.json", WHAT)
    if "mapper" in raw or str(raw.get("format", "")).startswith("sc-eval-clipcap"):
        raise CheckpointError(f"--adapter {adir}: a ClipCap captioning adapter (written by `sc-eval caption`; "
                              f"evaluate it with `sc-eval caption --adapter`); {WHAT}")
    if "projector" not in raw or "encoder" not in raw:
        raise CheckpointError(f"--adapter {adir}: its config.json is not a LLaVA adapter's (no 'projector' "
                              f"or 'encoder'); {WHAT}")
    check_safetensors(adir / "projector.safetensors", WHAT)
    if (adir / "lora").exists():
        read_json_object(adir / "lora" / "adapter_config.json", WHAT)
        check_safetensors(adir / "lora" / "adapter_model.safetensors", WHAT)
    elif raw.get("lora") and not raw.get("full_finetune"):
        raise CheckpointError(f"--adapter {adir}: its config records LoRA weights but lora/ is missing; {WHAT}")
    if (adir / "llm").exists() or raw.get("full_finetune"):
        check_hf_model_dir(adir / "llm", WHAT)
    return raw


def read_config(adapter_dir):
    raw = check_adapter(adapter_dir)
    known = {f.name for f in dataclasses.fields(LlavaConfig)}
    return LlavaConfig(**{k: v for k, v in raw.items() if k in known})


def load_adapter(adapter_dir, encoder, device: str = "cpu", precision: str = "fp32", llm_path=None):
    """Rebuild the trained composition from an adapter directory and a loaded encoder."""
    adapter_dir = Path(adapter_dir)
    cfg = read_config(adapter_dir)
    fp = getattr(encoder, "fingerprint", "")
    if cfg.encoder_fingerprint and fp and not same(cfg.encoder_fingerprint, fp):
        raise CheckpointError(f"--adapter {adapter_dir} was trained on encoder {cfg.encoder} "
                              f"(fingerprint {cfg.encoder_fingerprint[:12]}), not on the one given "
                              f"(fingerprint {fp[:12]}); pass the same --encoder")
    if (adapter_dir / "llm").is_dir():
        llm_dir = adapter_dir / "llm"
    else:
        llm_dir = llm_path or cfg.llm  # a local directory, or a random:NAME spec
    llm, tok = load_llm(llm_dir, device=device, precision=precision)
    if (adapter_dir / "lora").is_dir():
        llm = PeftModel.from_pretrained(llm, adapter_dir / "lora", is_trainable=False)
    cfg.llm = str(llm_dir)
    model = build(encoder, llm, tok, cfg, device=device)
    state = load_file(str(adapter_dir / "projector.safetensors"))  # checked whole by read_config
    try:
        model.projector.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{adapter_dir / 'projector.safetensors'}: does not fit projector "
                              f"{cfg.projector} ({e})") from None
    model.to(device)
    model.eval()
    return model
