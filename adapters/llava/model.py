"""LLaVA by composition: frozen encoder -> projector -> any causal LM, spliced at ``<image>``.

Nothing subclasses an HF LLM class: the LLM is whatever ``AutoModelForCausalLM`` loads from a
local directory, and images enter through ``inputs_embeds``. That keeps the code independent of
one transformers version and of the LLM family (Llama, Vicuna, Mistral, a tiny test model).

Tensor conventions: a prompt is a list of token ids where ``IMAGE_INDEX`` marks where the image's
projected patch tokens go (one image per sample at most). ``splice`` turns a batch of such lists
into padded ``inputs_embeds`` + ``attention_mask`` + ``position_ids`` (+ labels), right-padded for
training and left-padded for generation; position ids count only real tokens, so padding never
changes what a sample sees.
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from PIL import Image
from transformers import BitsAndBytesConfig

from sc_eval.adapters.llava.projector import build_projector
from sc_eval.adapters.llava.templates import IGNORE_INDEX, IMAGE_INDEX
from sc_eval.errors import ConfigError, MissingDependencyError
from sc_eval.models import hf
from sc_eval.models.lm import load_causal_lm
from sc_eval.models.lm_specs import is_random_lm
from sc_eval.runtime.precision import weight_dtype

log = logging.getLogger(__name__)

ADAPTER_FORMAT = 1


@dataclass
class LlavaConfig:
    """Everything needed to rebuild the composition; saved as the adapter's config.json."""

    encoder: str = "random:sc-vit-tiny"
    encoder_fingerprint: str = ""
    llm: str = ""
    projector: str = "mlp2x_gelu"
    select_layer: int = -2
    template: str = "vicuna_v1"
    lora: dict | None = field(default_factory=lambda: {"r": 128, "alpha": 256, "dropout": 0.05})
    full_finetune: bool = False
    image_pad: str = "mean"  # pad to square with the encoder's mean colour (LLaVA-1.5)
    format_version: int = ADAPTER_FORMAT


def pad_to_square(img, fill):
    """Pad a PIL image to a square canvas of colour ``fill`` (RGB ints), image centred."""
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    canvas = Image.new(img.mode, (side, side), tuple(fill))
    canvas.paste(img, ((side - w) // 2, (side - h) // 2))
    return canvas


def image_tensor(encoder, img):
    """LLaVA-1.5 preprocessing: pad to square with the encoder's mean colour, then its transform.

    The colour is LLaVA's ``int(255 * mean)`` (truncated: CLIP's mean gives (122, 116, 104)).
    """
    mean = getattr(encoder, "mean", None) or (0.5, 0.5, 0.5)
    return encoder.transform(pad_to_square(img.convert("RGB"), [int(255 * m) for m in mean]))


def load_llm(path, device: str = "cpu", precision: str = "fp32", quantize_4bit: bool = False):
    """(model, tokenizer) of the LLM (``sc_eval.models.lm.load_causal_lm``: a local HF directory,
    or ``random:NAME`` such as random:vicuna-7b), its weights in ``precision``'s dtype or, with
    ``quantize_4bit``, QLoRA's 4-bit nf4."""
    if quantize_4bit and is_random_lm(str(path)):
        raise ConfigError(f"--llm {path}: --4bit quantises downloaded weights; a random LLM is built "
                          "directly in --precision's dtype (drop --4bit)")
    return load_causal_lm(path, device=device, dtype=weight_dtype(precision, device), flag="--llm",
                          quantization_config=_bnb_config() if quantize_4bit else None)


def _bnb_config():
    """QLoRA's 4-bit nf4 + double quantisation; clear errors when it cannot run here."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingDependencyError("4-bit QLoRA needs the bitsandbytes package: pip install bitsandbytes "
                                     "(or drop --4bit)")
    if not torch.cuda.is_available():
        raise MissingDependencyError("4-bit QLoRA needs a CUDA GPU (bitsandbytes); drop --4bit on this machine")

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def lora_targets(llm) -> list[str]:
    """Names of every linear layer of the LLM except the output head (LLaVA's find_all_linear_names)."""
    names = set()
    head = llm.get_output_embeddings()
    for name, mod in llm.named_modules():
        if mod is head or name.split(".")[-1] == "lm_head":
            continue
        if isinstance(mod, nn.Linear) or type(mod).__name__ in ("Linear4bit", "Linear8bitLt"):
            names.add(name.split(".")[-1])
    return sorted(names)


def add_lora(llm, r: int, alpha: int, dropout: float, quantized: bool = False):
    """Wrap the LLM with PEFT LoRA on all its linear layers (not lm_head); only LoRA weights train."""
    if quantized:
        llm = prepare_model_for_kbit_training(llm, use_gradient_checkpointing=True)
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=lora_targets(llm),
                     bias="none", task_type="CAUSAL_LM")
    return get_peft_model(llm, cfg)


class LlavaModel(nn.Module):
    """The composition: frozen ``encoder``, trainable ``projector``, the causal ``llm`` (LoRA-wrapped
    or not) and its ``tokenizer``, as ``config`` describes them."""

    def __init__(self, encoder, projector, llm, tokenizer, config: LlavaConfig):
        super().__init__()
        self.encoder, self.projector, self.llm = encoder, projector, llm
        self.tokenizer, self.config = tokenizer, config
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.encoder.eval()

    @property
    def device(self):
        return next(self.projector.parameters()).device if any(True for _ in self.projector.parameters()) \
            else self.llm.get_input_embeddings().weight.device

    def image_tokens(self, pixels):
        """[B,3,H,W] -> [B, N_patches, llm_width]: frozen encoder tokens at select_layer, projected."""
        with torch.no_grad():
            feats = self.encoder.forward_tokens(pixels, layer=self.config.select_layer)
        w = next(self.projector.parameters(), None)
        feats = feats.to(w.dtype if w is not None else feats.dtype)
        return self.projector(feats)

    def splice(self, ids_list, images, labels_list=None, left_pad=False):
        """Padded (inputs_embeds, attention_mask, position_ids, labels) with images spliced in."""
        emb = self.llm.get_input_embeddings()
        dev = emb.weight.device
        rows, labs = [], []
        for i, ids in enumerate(ids_list):
            t = torch.tensor([x if x >= 0 else 0 for x in ids], dtype=torch.long, device=dev)
            e = emb(t)
            lab = labels_list[i] if labels_list is not None else None
            n_img = sum(1 for x in ids if x == IMAGE_INDEX)
            if n_img > 1:
                raise ConfigError(f"sample {i}: {n_img} <image> placeholders; one image per sample is supported")
            if n_img == 1:
                k = ids.index(IMAGE_INDEX)
                img = images[i].to(e.dtype)
                e = torch.cat([e[:k], img, e[k + 1:]], 0)
                if lab is not None:
                    lab = lab[:k] + [IGNORE_INDEX] * img.shape[0] + lab[k + 1:]
            rows.append(e)
            labs.append(lab)
        T = max(r.shape[0] for r in rows)
        B, H = len(rows), rows[0].shape[1]
        embeds = rows[0].new_zeros(B, T, H)
        mask = torch.zeros(B, T, dtype=torch.long, device=dev)
        labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long, device=dev) if labels_list is not None else None
        for i, r in enumerate(rows):
            n = r.shape[0]
            sl = slice(T - n, T) if left_pad else slice(0, n)
            embeds[i, sl] = r
            mask[i, sl] = 1
            if labels is not None:
                labels[i, sl] = torch.tensor(labs[i], dtype=torch.long, device=dev)
        position_ids = (mask.cumsum(1) - 1).clamp(min=0)
        return embeds, mask, position_ids, labels

    def forward(self, ids_list, pixels, labels_list, reduction: str = "mean"):
        """Next-token cross-entropy over the label positions (``reduction`` "mean" or "sum").

        The LLM's decoder body gives the hidden states; only the rows that predict a label
        go through the output layer, so image and system-prompt positions, most of a LLaVA
        sequence, never pay for [T, vocab] logits. This is the arithmetic of the LLM's own
        forward in every transformers version (checked once per LLM: a model whose logits
        are not its output layer applied to those hidden states gets its own forward's loss).
        """
        imgs = self.image_tokens(pixels) if pixels is not None else None
        embeds, mask, pos, labels = self.splice(ids_list, imgs, labels_list)
        targets = labels[:, 1:]
        wanted = targets != IGNORE_INDEX  # [B, T-1]: position t predicts label t+1
        body = self._answer_rows_body()
        if body is None:
            out = self.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, labels=labels,
                           use_cache=False)
            return out.loss * wanted.sum() if reduction == "sum" else out.loss
        hidden = body(inputs_embeds=embeds, attention_mask=mask, position_ids=pos,
                      use_cache=False).last_hidden_state
        logits = self.llm.get_output_embeddings()(hidden[:, :-1][wanted])
        return F.cross_entropy(logits.float(), targets[wanted], reduction=reduction)

    def _answer_rows_body(self):
        """The LLM's decoder body when the loss may apply the output layer to answer rows
        only, else None (decided once per LLM object: adding LoRA makes a new one)."""
        body = hf.decoder_body(self.llm)
        if getattr(self, "_head_check", (None, None))[0] is not self.llm:
            ok = hf.logits_are_head_of_body(self.llm, body)
            if not ok:
                log.warning("%s: logits are not the output layer applied to the decoder's hidden states; "
                            "the loss uses the model's full forward", type(hf.core_model(self.llm)).__name__)
            self._head_check = (self.llm, ok)
        return body if self._head_check[1] else None


def build(encoder, llm, tokenizer, config: LlavaConfig, device: str = "cpu"):
    """Compose encoder + new projector + LLM (projector in fp32; the LLM keeps its dtype)."""
    hidden = llm.get_input_embeddings().weight.shape[1]
    projector = build_projector(config.projector, encoder.width, hidden).to(device)
    config.encoder_fingerprint = getattr(encoder, "fingerprint", "") or config.encoder_fingerprint
    return LlavaModel(encoder, projector, llm, tokenizer, config)


def config_dict(config: LlavaConfig) -> dict:
    return asdict(config)
