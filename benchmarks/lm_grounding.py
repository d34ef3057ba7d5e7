"""Does the base LLM read a picture described in words? LLaVA's questions with the image replaced.

LLaVA can only answer "Is there a star in the image?" from image tokens if its LLM can check a
named object against what the context holds. This script asks the LLM alone (no image, no
projector) with one of the picture's own COCO captions in place of the image: POPE's three
files and VQAv2 val's colour questions ("What color is the star?"), each once with the caption
and once without. An LLM that uses its context scores far above its no-caption row; one that
answers from the question alone scores the same on both rows. Prompts are LLaVA's (vicuna_v1
template, the short-answer instruction), greedy decoding, POPE's own answer parsing.

Prints ONE JSON object: per LLM directory, POPE accuracy / F1 / yes-ratio (percent) and the
colour questions' exact-match accuracy, with and without the caption.

    python benchmarks/lm_grounding.py ~/.cache/sc-eval/world-0-v5-tinylm-llama-*/ --world ~/.cache/sc-eval/world-0-v5

(the demo's tiny Llama is cached beside its world, under ``$SC_EVAL_HOME``, default
``~/.cache/sc-eval``.)
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

POPE_FILES = ("coco_pope_random.json", "coco_pope_popular.json", "coco_pope_adversarial.json")


def _captions(world: Path) -> dict[str, list[str]]:
    """val2014 file name -> its captions."""
    path = world / "coco" / "annotations" / "captions_val2014.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found; --world must be an embedded world (`sc-eval world --out DIR`)")
    ann = json.loads(path.read_text())
    names = {im["id"]: im["file_name"] for im in ann["images"]}
    out: dict[str, list[str]] = {}
    for a in ann["annotations"]:
        out.setdefault(names[a["image_id"]], []).append(a["caption"])
    return out


def _questions(world: Path, limit: int) -> tuple[list[dict], list[dict]]:
    """(POPE questions, VQAv2 val colour questions), each {"image", "question", "answer"}."""
    pope = []
    for name in POPE_FILES:
        lines = (world / "pope" / name).read_text().splitlines()
        pope += [{"image": r["image"], "question": r["text"], "answer": r["label"]}
                 for r in map(json.loads, lines[:limit])]
    vqa = world / "vqav2"
    qs = json.loads((vqa / "v2_OpenEnded_mscoco_val2014_questions.json").read_text())["questions"]
    ans = {a["question_id"]: a["multiple_choice_answer"]
           for a in json.loads((vqa / "v2_mscoco_val2014_annotations.json").read_text())["annotations"]}
    colour = [{"image": f"COCO_val2014_{q['image_id']:012d}.jpg", "question": q["question"],
               "answer": ans[q["question_id"]]}
              for q in qs if q["question"].startswith("What color is")][:limit]
    return pope, colour


def _answers(model, tok, prompts: list[list[int]], batch: int = 32) -> list[str]:
    """Greedy answers (at most 4 new tokens), left-padded batches."""
    import torch

    out = []
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for i in range(0, len(prompts), batch):
        part = prompts[i:i + batch]
        width = max(map(len, part))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in part])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in part])
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False,
                                 pad_token_id=pad)
        out += [tok.decode(g[width:], skip_special_tokens=True).strip() for g in gen]
    return out


def evaluate(llm_dir: str, world: Path, limit: int) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sc_eval.adapters.llava.templates import build_prompt
    from sc_eval.metrics.pope import pope_metrics
    from sc_eval.world.writers import SHORT_ANSWER

    tok = AutoTokenizer.from_pretrained(llm_dir)
    model = AutoModelForCausalLM.from_pretrained(llm_dir).eval()
    caps = _captions(world)
    pope, colour = _questions(world, limit)
    res: dict = {}
    for mode in ("caption", "no_caption"):
        def prompt(i: int, q: dict) -> list[int]:
            ctx = caps[q["image"]][i % len(caps[q["image"]])] + "\n" if mode == "caption" else ""
            return build_prompt(ctx + q["question"] + SHORT_ANSWER, tok, "vicuna_v1", with_image=False)

        pred = _answers(model, tok, [prompt(i, q) for i, q in enumerate(pope)])
        m = pope_metrics(pred, [q["answer"] for q in pope])
        col = _answers(model, tok, [prompt(i, q) for i, q in enumerate(colour)])
        hits = sum(p.lower().strip(". ") == q["answer"] for p, q in zip(col, colour))
        res[mode] = {"pope_accuracy": round(m["accuracy"], 2), "pope_f1": round(m["f1"], 2),
                     "pope_yes_ratio": round(m["yes_ratio"], 2),
                     "colour_accuracy": round(100.0 * hits / max(1, len(colour)), 2)}
    res["n_pope"], res["n_colour"] = len(pope), len(colour)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("llms", nargs="+", help="Hugging Face LLM directories (e.g. the demo's tiny Llama)")
    ap.add_argument("--world", required=True, help="an embedded world (`sc-eval world --out DIR`)")
    ap.add_argument("--limit", type=int, default=300, help="questions per POPE file and colour questions")
    args = ap.parse_args()
    world = Path(args.world).expanduser()
    print(json.dumps({d: evaluate(d, world, args.limit) for d in args.llms}, indent=1))


if __name__ == "__main__":
    main()
