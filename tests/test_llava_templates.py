"""LLaVA conversation templates: labels built turn by turn, checked token by token.

The tokenizer is the LLaMA SentencePiece model that ships in a package (32,000 ids), so the
token strings below are what a Vicuna/LLaMA tokenizer produces, written out by hand.
"""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from sc_eval.adapters.llava.templates import (IGNORE_INDEX, IMAGE_INDEX, VICUNA_SYSTEM, build_example,
                                              build_prompt, render_prompt)
from sc_eval.errors import ConfigError, DataError

SHORT = "\nAnswer the question using a single word or phrase."


@pytest.fixture(scope="module")
def tok():
    from sc_eval.models.tokenizers import llama_tokenizer

    return llama_tokenizer()


CONV = [
    {"from": "human", "value": "<image>\nWhat colour is the circle?"},
    {"from": "gpt", "value": "Red"},
    {"from": "human", "value": "How many squares?"},
    {"from": "gpt", "value": "two squares"},
]


def test_vicuna_v1_labels_cover_exactly_the_assistant_turns(tok):
    ids, labels = build_example(CONV, tok, "vicuna_v1")
    assert len(ids) == len(labels) == 65
    pieces = [tok.convert_ids_to_tokens(i) if i >= 0 else "<IMG>" for i in ids]
    learned = [p for p, lab in zip(pieces, labels) if lab != IGNORE_INDEX]
    # what the model is trained to say, and nothing else: each answer followed by </s>
    assert learned == ["▁Red", "</s>", "▁two", "▁squ", "ares", "</s>"]
    # where an id is learned its label is the id itself (HF shifts labels inside the model)
    assert all(lab in (IGNORE_INDEX, i) for i, lab in zip(ids, labels))
    # the masked context, piece by piece, as the conversation reads
    assert pieces[:2] == ["<s>", "▁A"] and ids[0] == 1
    k = pieces.index("<IMG>")
    assert pieces[k - 4:k + 3] == ["▁US", "ER", ":", "▁", "<IMG>", "▁", "<0x0A>"]
    assert pieces[k + 3:k + 12] == ["What", "▁colour", "▁is", "▁the", "▁circle", "?", "▁ASS", "IST", "ANT"]
    assert pieces[49:57] == ["▁US", "ER", ":", "▁How", "▁many", "▁squ", "ares", "?"]
    assert tok.decode(ids[k + 1:]) == ("\nWhat colour is the circle? ASSISTANT: Red</s> "
                                       "USER: How many squares? ASSISTANT: two squares</s>")
    # The system prompt tokenised on its own equals the same text tokenised as a whole.
    assert ids[:k] == tok(f"{VICUNA_SYSTEM} USER: ")["input_ids"]


def test_generation_prompt_is_the_training_prefix(tok):
    """Inference sees exactly the ids training saw before the first answer."""
    ids, labels = build_example(CONV, tok, "vicuna_v1")
    prompt = build_prompt("What colour is the circle?", tok, "vicuna_v1")
    assert prompt == ids[:len(prompt)]
    assert labels[len(prompt) - 1] == IGNORE_INDEX and labels[len(prompt)] == ids[len(prompt)]
    assert prompt.count(IMAGE_INDEX) == 1


def test_plain_template_learns_the_caption_and_newline(tok):
    conv = [{"from": "human", "value": "Describe it briefly.\n<image>"},
            {"from": "gpt", "value": "a red circle on the left."}]
    ids, labels = build_example(conv, tok, "plain")
    assert ids[:2] == [1, IMAGE_INDEX] and labels[:2] == [IGNORE_INDEX, IGNORE_INDEX]
    assert tok.convert_ids_to_tokens(ids[2:]) == ["▁a", "▁red", "▁circle", "▁on", "▁the", "▁left", ".", "<0x0A>"]
    assert labels[2:] == ids[2:]
    assert build_prompt("ignored", tok, "plain") == [1, IMAGE_INDEX]


def test_prompt_snapshot_vicuna_v1():
    assert render_prompt("What is written?" + SHORT, "vicuna_v1") == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the user's questions. USER: <image>\nWhat is written?\n"
        "Answer the question using a single word or phrase. ASSISTANT:")


def test_malformed_conversations_are_named(tok):
    with pytest.raises(DataError, match="rec7.*turn 0"):
        build_example([{"from": "gpt", "value": "hi"}], tok, "vicuna_v1", where="rec7")
    with pytest.raises(ConfigError, match="did you mean 'vicuna_v1'"):
        build_example(CONV, tok, "vicuna_v2")


def test_examples_truncated_to_nothing_are_refused(tok):
    from sc_eval.adapters.llava.data import ConversationData

    docs = [{"doc_id": "a", "image": "x.jpg", "conversations": CONV}]
    data = ConversationData(docs, tok, "vicuna_v1", max_length=60)
    assert len(data) == 1  # the first answer survives a cut at 60 tokens
    with pytest.raises(DataError, match="no usable conversation"):
        ConversationData(docs, tok, "vicuna_v1", max_length=40)
