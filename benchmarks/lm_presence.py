"""Can a tiny Llama learn POPE's check at all? "Is there a star?" against a caption, by prompt form.

POPE asks the LLM whether a named object is in what its context shows. This script takes the
vision out entirely: a fresh tiny Llama (the demo's architecture, ``sc_eval.demo.tiny_lm``) is trained
from scratch on one decision, yes or no, from a COCO caption of the embedded world and a shape
name, with the loss on the answer alone (the two-way softmax over the "yes" and "no" logits at
the prompt's last position). The same captions and questions are put in three forms:

- ``short``: ``<caption>. Is there a star?``
- ``chat``: LLaVA's prompt (vicuna_v1 with its system prompt, the caption where the image goes,
  POPE's question and the short-answer instruction), what the demo's LLaVA is trained on;
- ``chat_nosys``: the same without the system prompt (``USER: ... ASSISTANT:``).

``--llm DIR`` starts from a trained LLM instead (e.g. the demo's tiny Llama, which has read the
world's corpus and its LLaVA dialogues): does what it learned before help or hinder?

The answer is whether the caption shown names the shape (POPE's answers in the embedded world
follow the same rule for the picture's captions); half of the questions name a shape the caption
names, half one it does not. Training reads train2014 captions, accuracy is measured on val2014
captions (held-out pictures), so a form that only memorises scores 50%.

Prints ONE JSON object: per form, held-out accuracy (percent) every ``--eval-every`` steps and the
seconds it trained.

    python benchmarks/lm_presence.py --world ~/.cache/sc-eval/world-0-v5 --steps 1600 [--llm DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FORMS = ("short", "chat", "chat_nosys")


def captions(world: Path, split: str) -> list[tuple[str, set[str]]]:
    """(caption, the shapes it names) for each caption of ``split`` (train2014 / val2014) naming one."""
    from sc_eval.world.scene import SHAPES

    path = world / "coco" / "annotations" / f"captions_{split}.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found; --world must be an embedded world (`sc-eval world --out DIR`)")
    out = []
    for a in json.loads(path.read_text())["annotations"]:
        text = a["caption"].rstrip(". ")
        named = {s for s in SHAPES if re.search(rf"\b{s}(e?s)?\b", text.lower())}
        if named and len(named) < len(SHAPES):  # both answers possible
            out.append((text, named))
    return out


def questions(caps, n: int, seed: int) -> list[tuple[str, str, bool]]:
    """``n`` (caption, shape, answer) triples, answers alternating yes / no."""
    from sc_eval.world.scene import SHAPES

    rng = random.Random(seed)
    out = []
    for i in range(n):
        text, named = caps[rng.randrange(len(caps))]
        yes = i % 2 == 0
        pool = sorted(named) if yes else [s for s in SHAPES if s not in named]
        out.append((text, rng.choice(pool), yes))
    return out


def encode(tok, form: str, caption: str, shape: str) -> list[int]:
    """Prompt ids for one question in ``form``; the answer is the next token."""
    from sc_eval.adapters.llava.templates import Template, build_prompt
    from sc_eval.world.writers import SHORT_ANSWER

    if form == "short":  # every shape name starts with a consonant, as in the world's own questions
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        return bos + tok(f"{caption}. Is there a {shape}?", add_special_tokens=False)["input_ids"]
    template = "vicuna_v1" if form == "chat" else Template("vicuna_v1")  # the latter: no system prompt
    return build_prompt(f"{caption}\nIs there a {shape} in the image?{SHORT_ANSWER}", tok, template,
                        with_image=False)


def answer_ids(tok) -> tuple[int, int]:
    """The first token of " yes" / " no" as the LLM writes them after ``ASSISTANT:`` or ``?``."""
    yes = tok(" yes", add_special_tokens=False)["input_ids"]
    no = tok(" no", add_special_tokens=False)["input_ids"]
    if yes[0] == no[0]:
        raise SystemExit("the tokenizer gives 'yes' and 'no' the same first token")
    return yes[0], no[0]


def _batch(rows: list[tuple[list[int], bool]], pad: int):
    import torch

    width = max(len(ids) for ids, _ in rows)  # left padding: the last position is the prompt's end
    ids = torch.tensor([[pad] * (width - len(p)) + p for p, _ in rows])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p, _ in rows])
    target = torch.tensor([0 if yes else 1 for _, yes in rows])
    return ids, mask, target


def _two_way_logits(model, ids, mask, yes_no):
    pos = (mask.cumsum(1) - 1).clamp(min=0)  # position ids that skip the left padding
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
    return logits[:, list(yes_no)]


def accuracy(model, rows, yes_no, pad: int, batch: int = 64) -> float:
    import torch

    model.eval()
    hits = 0
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            ids, mask, target = _batch(rows[i:i + batch], pad)
            hits += int((_two_way_logits(model, ids, mask, yes_no).argmax(1) == target).sum())
    model.train()
    return 100.0 * hits / len(rows)


def load_llm(llm: str | None, seed: int):
    """(model in train mode, tokenizer): the LLM in directory ``llm``, or a fresh demo-sized tiny Llama."""
    import torch

    from sc_eval.demo.tiny_lm import build_tiny_lm

    if llm is None:
        model, tok = build_tiny_lm("llama", seed=seed)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.manual_seed(seed)
        model, tok = AutoModelForCausalLM.from_pretrained(llm), AutoTokenizer.from_pretrained(llm)
        if tok.pad_token_id is None:
            tok.pad_token = tok.unk_token
    return model.train(), tok


def run_form(form: str, world: Path, steps: int, eval_every: int, batch: int, lr: float, n_val: int,
             seed: int, llm: str | None = None) -> dict:
    import torch

    model, tok = load_llm(llm, seed)
    yes_no = answer_ids(tok)
    pad = tok.pad_token_id  # load_llm sees to it that there is one
    train_caps, val_caps = captions(world, "train2014"), captions(world, "val2014")
    val = [(encode(tok, form, c, s), y) for c, s, y in questions(val_caps, n_val, seed + 1)]
    train = [(encode(tok, form, c, s), y) for c, s, y in questions(train_caps, steps * batch, seed)]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    curve = {0: round(accuracy(model, val, yes_no, pad), 2)}
    start = time.perf_counter()
    for step in range(1, steps + 1):
        ids, mask, target = _batch(train[(step - 1) * batch:step * batch], pad)
        loss = torch.nn.functional.cross_entropy(_two_way_logits(model, ids, mask, yes_no), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            curve[step] = round(accuracy(model, val, yes_no, pad), 2)
    prompt_len = sorted(len(p) for p, _ in val)[len(val) // 2]
    return {"val_accuracy": curve, "train_seconds": round(time.perf_counter() - start, 1),
            "median_prompt_tokens": prompt_len, "n_val": len(val)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", required=True, help="an embedded world (`sc-eval world --out DIR`)")
    ap.add_argument("--forms", default=",".join(FORMS), help=f"comma-separated, of {', '.join(FORMS)}")
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--n-val", type=int, default=400, help="held-out questions (val2014 captions)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--llm", help="start from this Hugging Face LLM directory (e.g. the demo's tiny Llama) "
                                  "instead of fresh weights")
    args = ap.parse_args()
    forms = [f for f in args.forms.split(",") if f]
    bad = [f for f in forms if f not in FORMS]
    if bad:
        raise SystemExit(f"unknown form(s) {', '.join(bad)}: choose from {', '.join(FORMS)}")
    world = Path(args.world).expanduser()
    print(json.dumps({f: run_form(f, world, args.steps, args.eval_every, args.batch_size, args.lr,
                                  args.n_val, args.seed, args.llm) for f in forms}, indent=1))


if __name__ == "__main__":
    main()
