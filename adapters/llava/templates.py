"""Conversation templates and label building, turn by turn.

LLaVA masks labels by re-tokenising pieces of an already-rendered prompt and counting tokens;
when the counts disagree (tokenizer version, a sentencepiece prefix space) every label is masked
and the loss is silently zero ("tokenization mismatch"). Here the token sequence is *built* from
its pieces: each piece is tokenised once and appended together with its own labels, so the ids
and the labels cannot drift apart, and the generation prompt is the very same pieces as training
up to the first assistant turn.

``<image>`` in a message becomes the sentinel id ``IMAGE_INDEX`` which the model replaces by the
projected patch tokens (labels there are ``IGNORE_INDEX``).
"""
from __future__ import annotations

from dataclasses import dataclass

from sc_eval.errors import ConfigError, DataError, did_you_mean

IMAGE_TOKEN = "<image>"
IMAGE_INDEX = -200
IGNORE_INDEX = -100

VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's questions.")

_HUMAN = {"human", "user"}
_GPT = {"gpt", "assistant"}


@dataclass(frozen=True)
class Template:
    """A conversation format. `plain`: image + caption + "\\n" (stage 1). `vicuna_v1`: chat (stage 2)."""

    name: str
    system: str = ""
    user: str = "USER"
    assistant: str = "ASSISTANT"


TEMPLATES = {
    "plain": Template("plain"),
    "vicuna_v1": Template("vicuna_v1", system=VICUNA_SYSTEM),
}


def get_template(name: str) -> Template:
    if name not in TEMPLATES:
        raise ConfigError(f"unknown conversation template {name!r}{did_you_mean(name, TEMPLATES)}; "
                          f"choose one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def encode_text(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens; each ``<image>`` becomes ``IMAGE_INDEX``."""
    ids: list[int] = []
    for i, chunk in enumerate(text.split(IMAGE_TOKEN)):
        if i > 0:
            ids.append(IMAGE_INDEX)
        if chunk:
            ids.extend(tokenizer(chunk, add_special_tokens=False)["input_ids"])
    return ids


def _pairs(conversations: list[dict], where: str) -> list[tuple[str, str | None]]:
    """[(human, gpt), ...] from LLaVA's alternating turns; a trailing human turn gets gpt=None."""
    pairs: list[tuple[str, str | None]] = []
    for i, turn in enumerate(conversations):
        role, value = turn.get("from"), turn.get("value")
        want = _HUMAN if i % 2 == 0 else _GPT
        if role not in want or not isinstance(value, str):
            raise DataError(f"{where}: turn {i} should be a {'human' if i % 2 == 0 else 'gpt'} turn with a "
                            f"string value, got from={role!r}; LLaVA conversations alternate human/gpt")
        if i % 2 == 0:
            pairs.append((value, None))
        else:
            pairs[-1] = (pairs[-1][0], value)
    if not pairs:
        raise DataError(f"{where}: empty conversation")
    return pairs


def build_example(conversations: list[dict], tokenizer, template: Template | str,
                  where: str = "conversation") -> tuple[list[int], list[int]]:
    """(input_ids, labels) for a training conversation; loss only on what the model must say.

    plain: ``<s> <image> caption\\n`` with loss on ``caption\\n`` (the human text is dropped,
    as in LLaVA's stage 1). vicuna_v1: ``<s> system USER: q ASSISTANT: a</s>USER: ...`` with loss
    on every ``a</s>``.
    """
    t = get_template(template) if isinstance(template, str) else template
    pairs = _pairs(conversations, where)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    ids: list[int] = [bos] if bos is not None else []
    labels: list[int] = [IGNORE_INDEX] * len(ids)

    def add(piece: list[int], learn: bool) -> None:
        ids.extend(piece)
        labels.extend(piece if learn else [IGNORE_INDEX] * len(piece))

    if t.name == "plain":
        caption = pairs[0][1]
        if caption is None:
            raise DataError(f"{where}: the plain template needs a caption (gpt turn)")
        add([IMAGE_INDEX], False)
        add(encode_text(tokenizer, caption.replace(IMAGE_TOKEN, "").strip() + "\n"), True)
    else:
        for i, (human, gpt) in enumerate(pairs):
            add(_user_piece(tokenizer, t, human, first=i == 0), False)
            if gpt is None:
                break
            add(encode_text(tokenizer, gpt) + ([eos] if eos is not None else []), True)
    # The invariant whose violation is LLaVA's silent zero loss: one label per id.
    assert len(ids) == len(labels), f"{where}: {len(ids)} ids vs {len(labels)} labels"
    return ids, labels


def _user_piece(tokenizer, t: Template, human: str, first: bool) -> list[int]:
    head = f"{t.system} {t.user}: " if first and t.system else f"{t.user}: "
    return encode_text(tokenizer, f"{head}{human} {t.assistant}:")


def build_prompt(question: str, tokenizer, template: Template | str, with_image: bool = True) -> list[int]:
    """Ids of the generation prompt for one question: the training pieces up to the answer."""
    t = get_template(template) if isinstance(template, str) else template
    if t.name == "plain":
        bos = tokenizer.bos_token_id
        return ([bos] if bos is not None else []) + ([IMAGE_INDEX] if with_image else [])
    human = f"{IMAGE_TOKEN}\n{question}" if with_image and IMAGE_TOKEN not in question else question
    ids, _ = build_example([{"from": "human", "value": human}], tokenizer, t)
    return ids


def render_prompt(question: str, template: Template | str, with_image: bool = True) -> str:
    """The prompt as text (what gets logged in predictions jsonl): same pieces as build_prompt."""
    t = get_template(template) if isinstance(template, str) else template
    if t.name == "plain":
        return IMAGE_TOKEN if with_image else ""
    human = f"{IMAGE_TOKEN}\n{question}" if with_image and IMAGE_TOKEN not in question else question
    head = f"{t.system} {t.user}: " if t.system else f"{t.user}: "
    return f"{head}{human} {t.assistant}:"


def truncate(ids: list[int], labels: list[int], max_length: int) -> tuple[list[int], list[int]]:
    """Cut to ``max_length`` tokens (image sentinel counted as one), keeping ids and labels aligned."""
    if len(ids) <= max_length:
        return ids, labels
    return ids[:max_length], labels[:max_length]


def n_targets(labels: list[int]) -> int:
    return sum(1 for x in labels if x != IGNORE_INDEX)
