"""LiT ("locked-image tuning"): how the paper gives a text-free SuperClass tower zero-shot ability.

The image tower stays frozen; a new linear projection of its pooled features and a text tower
trained from scratch are fitted with the CLIP contrastive loss on image-text pairs. Because the
tower is frozen, its features are computed once (shared cache) and training touches only the
text side, which is why a small run fits on a laptop CPU.

Zero-shot: each class weight is the normalised mean of the text embeddings of every prompt
template filled with the class name; an image goes to the class with the highest cosine.

Saved as a directory: ``config.json`` (sizes, tokenizer, the encoder's fingerprint) and
``model.safetensors`` (``image_proj.*``, ``text.*``, ``logit_scale``).
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from safetensors.torch import load_file
from torch import nn

from sc_eval.errors import CheckpointError, ConfigError
from sc_eval.io import atomic_save_safetensors, atomic_write_json, read_json
from sc_eval.models.text import TextTower
from sc_eval.models.tokenizers import clip_tokenizer
from sc_eval.runtime.fingerprint import same
from sc_eval.runtime.precision import autocast, grad_scaler
from sc_eval.runtime.schedules import warmup_cosine

log = logging.getLogger(__name__)

LIT_FORMAT = "sc-eval-lit"
LIT_VERSION = 2  # 2: the CLIP baseline's text tower (1: torch's TransformerEncoderLayer blocks)
VOCAB_SIZE = 49408  # OpenAI CLIP BPE; SOT 49406, EOT 49407 (the largest id)
EOT_ID = 49407


@dataclass
class TextConfig:
    vocab_size: int = VOCAB_SIZE + 1  # embedding rows: the kept BPE ids, then one for unseen ids
    context_length: int = 32  # the world's captions and CLIP's prompts fit; CLIP itself uses 77
    width: int = 128
    layers: int = 3
    heads: int = 4


@dataclass
class LitConfig:
    image_width: int = 128
    embed_dim: int = 128
    text: TextConfig = field(default_factory=TextConfig)


@dataclass
class LitTrainConfig:
    steps: int = 300
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1  # on matrices only; embeddings, norms, biases and the scale: none
    warmup_steps: int = 30
    seed: int = 0
    precision: str = "fp32"  # autocast of the projection and text tower (--precision)


class LitText(TextTower):
    """The CLIP baseline's text tower (:class:`sc_eval.models.text.TextTower`) over a trimmed
    vocabulary: its embedding rows are the BPE ids that occur in the training captions
    (``vocab_ids``, sorted), plus one row for every other id. A row whose token never occurs in
    training would keep its random initialisation anyway; dropping those rows makes each step
    touch a few thousand rows instead of 49,408, which is most of the step time on a CPU. The
    end-of-text id (49407) is the largest kept id, so its row is the last kept one.
    """

    def __init__(self, cfg: TextConfig, embed_dim: int):
        super().__init__(cfg.vocab_size, cfg.width, cfg.layers, cfg.heads, embed_dim,
                         context_length=cfg.context_length, eot_id=cfg.vocab_size - 2)
        self.cfg = cfg
        self.register_buffer("vocab_ids", torch.arange(cfg.vocab_size - 1))

    def set_vocab(self, ids: torch.Tensor) -> None:
        if ids.numel() != self.cfg.vocab_size - 1:
            raise ValueError(f"{ids.numel()} vocabulary ids for {self.cfg.vocab_size - 1} embedding rows")
        if int(ids.max()) != EOT_ID:
            raise ValueError("the kept vocabulary must hold the end-of-text id, its largest")
        self.vocab_ids.copy_(ids.sort().values)

    def rows(self, tokens: torch.Tensor) -> torch.Tensor:
        """BPE ids -> embedding rows; ids outside the vocabulary share the last row."""
        pos = torch.searchsorted(self.vocab_ids, tokens).clamp(max=self.vocab_ids.numel() - 1)
        return torch.where(self.vocab_ids[pos] == tokens, pos, self.vocab_ids.numel())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return super().forward(self.rows(tokens))


class LitModel(nn.Module):
    def __init__(self, cfg: LitConfig):
        super().__init__()
        self.cfg = cfg
        self.image_proj = nn.Linear(cfg.image_width, cfg.embed_dim, bias=False)
        nn.init.normal_(self.image_proj.weight, std=cfg.image_width ** -0.5)
        self.text = LitText(cfg.text, cfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(feats), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(tokens), dim=-1)

    def scale(self) -> torch.Tensor:
        """The logits' temperature: exp(logit_scale), at most 100 (CLIP's clamp)."""
        return self.logit_scale.clamp(max=math.log(100.0)).exp()


def _param_groups(model: nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_lit(image_feats: torch.Tensor, captions: list[str], cfg: LitConfig,
              train: LitTrainConfig | None = None, device: str = "cpu") -> LitModel:
    """Fit projection + text tower on (frozen features, caption) pairs; returns the model in eval.

    ``cfg.text.vocab_size`` is replaced by the size of the captions' vocabulary (see LitText).
    """
    train = train or LitTrainConfig()
    n = len(captions)
    if image_feats.shape[0] != n:
        raise ConfigError(f"LiT: {image_feats.shape[0]} image features for {n} captions")
    if n < 2:
        raise ConfigError(f"LiT needs at least 2 image-text pairs, got {n}")
    if train.steps < 1:
        raise ConfigError(f"--steps must be at least 1 (got {train.steps})")

    amp = autocast(device, train.precision)  # refuses a precision the device cannot run, first
    scaler = grad_scaler(device, train.precision)
    tokens = clip_tokenizer(cfg.text.context_length)(captions)
    vocab = torch.unique(torch.cat([tokens.flatten(), torch.tensor([0, 49406, 49407])]))
    cfg = replace(cfg, text=replace(cfg.text, vocab_size=vocab.numel() + 1))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train.seed)
        model = LitModel(cfg)
        model.text.set_vocab(vocab)
        model = model.to(device)
    opt = torch.optim.AdamW(_param_groups(model, train.weight_decay), lr=train.lr, betas=(0.9, 0.98), eps=1e-6)
    gen = torch.Generator().manual_seed(train.seed)
    bs = min(train.batch_size, n)
    feats = image_feats.float()
    order, pos = torch.randperm(n, generator=gen), 0
    warm = max(1, min(train.warmup_steps, train.steps // 5))  # short runs still reach the peak
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(warm, train.steps))
    clip_loss = ClipLoss()  # open_clip's symmetric InfoNCE, as the CLIP baseline's pretraining
    model.train()
    for step in range(train.steps):
        if pos + bs > n:  # a new epoch: reshuffle, never a ragged batch
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos:pos + bs]
        pos += bs
        with amp:
            loss = clip_loss(model.encode_image(feats[idx].to(device)), model.encode_text(tokens[idx].to(device)),
                             model.scale())
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        if step % 50 == 0 or step == train.steps - 1:
            log.info("LiT step %d/%d loss %.4f", step + 1, train.steps, loss.item())
    return model.eval()


@torch.no_grad()
def zeroshot_classifier(model: LitModel, classnames: list[str], templates: list[str],
                        device: str = "cpu", precision: str = "fp32") -> torch.Tensor:
    """[C, E] unit-norm class weights: the mean of each class's normalised template embeddings
    (the text tower run under autocast in ``precision``)."""
    tok = clip_tokenizer(model.cfg.text.context_length)
    weights, unseen = [], []
    for name in classnames:
        ids = tok([name])[0]
        ids = ids[(ids != 0) & (ids < 49406)]
        if (model.text.rows(ids.to(device)) == model.text.vocab_ids.numel()).any():
            unseen.append(name)
        with autocast(device, precision):
            emb = model.encode_text(tok([t.format(name) for t in templates]).to(device)).float()
        weights.append(F.normalize(emb.mean(0), dim=-1))
    if unseen:
        log.warning("%d class name(s) contain words absent from the LiT training captions (e.g. %r): "
                    "their text embeddings carry no learned meaning", len(unseen), unseen[0])
    return torch.stack(weights)


@torch.no_grad()
def zeroshot_scores(model: LitModel, image_feats: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    return model.encode_image(image_feats.float().to(classifier.device)) @ classifier.T


def save_lit(model: LitModel, out: Path, encoder_fingerprint: str, extra: dict | None = None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_save_safetensors(out / "model.safetensors", model.state_dict())
    atomic_write_json(out / "config.json", {
        "format": LIT_FORMAT, "version": LIT_VERSION, **asdict(model.cfg), "tokenizer": "openai-clip-bpe",
        "encoder_fingerprint": encoder_fingerprint, **(extra or {})})
    return out


def load_lit(path: Path, encoder=None, device: str = "cpu") -> LitModel:
    """Load a saved LiT directory; refuse one made for a different image width, warn on another
    encoder's fingerprint (the projection was fitted to that tower's features)."""
    path = Path(path)
    cfg_path, weights = path / "config.json", path / "model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise CheckpointError(f"--lit {path}: expected config.json and model.safetensors "
                              "(the lit/ folder of a previous `sc-eval zeroshot` run)")
    raw = read_json(cfg_path)
    if raw.get("format") != LIT_FORMAT:
        raise CheckpointError(f"{cfg_path}: not a LiT text side (format {raw.get('format')!r})")
    if raw.get("version") != LIT_VERSION:
        raise CheckpointError(f"{cfg_path}: a LiT text side of format version {raw.get('version')}, which this "
                              f"version of sc-eval cannot load (it reads version {LIT_VERSION}); train it again "
                              "with `sc-eval zeroshot --overwrite` (without --lit)")
    cfg = LitConfig(image_width=raw["image_width"], embed_dim=raw["embed_dim"], text=TextConfig(**raw["text"]))
    if encoder is not None:
        if encoder.width != cfg.image_width:
            raise CheckpointError(f"--lit {path}: trained on {cfg.image_width}-d image features but the encoder "
                                  f"gives {encoder.width}-d; pass the encoder it was trained with")
        if raw.get("encoder_fingerprint") is not None and not same(raw["encoder_fingerprint"], encoder.fingerprint):
            log.warning("--lit %s was trained on another encoder (fingerprint %s); zero-shot numbers will "
                        "not mean much", path, str(raw.get("encoder_fingerprint"))[:12])
    model = LitModel(cfg)
    try:
        state = load_file(str(weights))
        model.load_state_dict(state)
    except (RuntimeError, OSError) as e:
        raise CheckpointError(f"{weights}: cannot load LiT weights ({str(e).splitlines()[0]})") from None
    return model.to(device).eval()
