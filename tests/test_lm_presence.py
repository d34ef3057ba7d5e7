"""benchmarks/lm_presence.py: a fresh tiny Llama trained on POPE's yes/no check against a caption."""
from __future__ import annotations

import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def presence():
    return load_benchmark("lm_presence")


def test_questions_are_balanced_and_answered_by_the_caption_shown(presence, tiny_world):
    import json

    val = presence.captions(tiny_world, "val2014")
    val_text = {a["caption"].rstrip(". ")
                for a in json.loads((tiny_world / "coco/annotations/captions_val2014.json").read_text())["annotations"]}
    assert val and {c for c, _ in val} <= val_text
    qs = presence.questions(val, 200, seed=3)
    assert sum(yes for _, _, yes in qs) == 100
    for caption, shape, yes in qs:  # "crosses" contains "cross", "stars" contains "star"
        assert (shape in caption.lower()) == yes, (caption, shape, yes)


def test_the_three_prompt_forms(presence):
    from sc_eval.demo.tiny_lm import _tokenizer

    tok = _tokenizer("llama")
    cap = 'A red star and a blue circle and the text "sun"'

    def text(form):
        return tok.decode(presence.encode(tok, form, cap, "square"), skip_special_tokens=True)

    assert text("short") == f"{cap}. Is there a square?"
    chat, nosys = text("chat"), text("chat_nosys")
    assert chat.startswith("A chat between a curious user") and "USER:" in chat
    assert nosys.startswith("USER: " + cap) and "A chat between" not in nosys
    for t in (chat, nosys):
        assert "Is there a square in the image?" in t and t.endswith("ASSISTANT:")
        assert "Answer the question using a single word or phrase." in t


def test_left_padding_does_not_change_a_prompts_answer(presence):
    import torch

    from sc_eval.demo.tiny_lm import build_tiny_lm

    model, tok = build_tiny_lm("llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    model.eval()
    yes_no = presence.answer_ids(tok)
    short = presence.encode(tok, "short", "a green star", "star")
    long = presence.encode(tok, "chat", "a green star on the left and a red cross at the top", "circle")
    ids, mask, target = presence._batch([(short, True), (long, False)], pad=tok.pad_token_id)
    assert target.tolist() == [0, 1]
    with torch.no_grad():
        both = presence._two_way_logits(model, ids, mask, yes_no)
        alone = presence._two_way_logits(model, torch.tensor([short]), torch.ones(1, len(short), dtype=torch.long),
                                         yes_no)
    torch.testing.assert_close(both[0], alone[0], atol=1e-4, rtol=1e-4)


def test_a_run_reports_held_out_accuracy_along_the_way(presence, tiny_world):
    res = presence.run_form("chat_nosys", tiny_world, steps=4, eval_every=2, batch=4, lr=3e-3, n_val=8, seed=0)
    assert list(res["val_accuracy"]) == [0, 2, 4]
    assert all(acc in {100.0 * k / 8 for k in range(9)} for acc in res["val_accuracy"].values())
    assert res["n_val"] == 8 and res["median_prompt_tokens"] > 20


def test_a_run_can_start_from_a_trained_llm(presence, tmp_path):
    import torch

    from sc_eval.demo.tiny_lm import MODEL_DEFAULTS, build_tiny_lm, save_lm

    model, tok = build_tiny_lm("llama", seed=5, hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    llm = save_lm(model, tok, tmp_path / "llm")
    loaded, loaded_tok = presence.load_llm(str(llm), seed=0)
    assert loaded.training and loaded.config.hidden_size == 32 and len(loaded_tok) == len(tok)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    fresh, _ = presence.load_llm(None, seed=0)
    assert fresh.config.hidden_size == MODEL_DEFAULTS["llama"]["hidden_size"]
