"""benchmarks/lm_grounding.py: LLaVA's questions asked of the LLM alone, a caption in place of the image."""
from __future__ import annotations

import re

import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def grounding():
    return load_benchmark("lm_grounding")


def test_each_question_is_paired_with_captions_of_its_own_picture(grounding, tiny_world):
    caps = grounding._captions(tiny_world)
    pope, colour = grounding._questions(tiny_world, limit=1000)
    assert pope and colour
    for q in colour:  # "What color is the star?" -> the answer is the word before "star" in a caption
        shape = re.match(r"What color is the (\w+)\?", q["question"]).group(1)
        text = " ".join(caps[q["image"]]).lower()
        assert re.search(rf"\b{q['answer']} {shape}", text), (q, caps[q["image"]])
    for q in pope:  # a "yes" names a shape some caption mentions, a "no" one that none does
        shape = re.match(r"Is there an? (\w+) in the image\?", q["question"]).group(1)
        said = re.search(rf"\b{shape}(e?s)?\b", " ".join(caps[q["image"]]).lower()) is not None
        assert said == (q["answer"] == "yes"), (q, caps[q["image"]])


def test_an_llm_is_asked_with_and_without_the_caption(grounding, tiny_world, tmp_path):
    from sc_eval.demo.tiny_lm import build_tiny_lm, save_lm

    model, tok = build_tiny_lm("llama", hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    llm = save_lm(model, tok, tmp_path / "llm")
    res = grounding.evaluate(str(llm), tiny_world, limit=4)
    n_pope = sum(min(4, len((tiny_world / "pope" / f).read_text().splitlines())) for f in grounding.POPE_FILES)
    assert res["n_pope"] == n_pope
    for mode in ("caption", "no_caption"):
        assert set(res[mode]) == {"pope_accuracy", "pope_f1", "pope_yes_ratio", "colour_accuracy"}
        assert 0.0 <= res[mode]["pope_yes_ratio"] <= 100.0
