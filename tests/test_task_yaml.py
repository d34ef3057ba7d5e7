"""Task files: `include:` shares fields between YAMLs, and the shared VQA prompt is the one
LLaVA-1.5 asks (PROTOCOLS.md), with the prompt hash stored predictions were written under."""
import hashlib

import pytest

from sc_eval.errors import ConfigError
from sc_eval.evaluation.tasks import _load_yaml, discover

SHORT = "Answer the question using a single word or phrase."
UNANSWERABLE = "When the provided information is insufficient, respond with 'Unanswerable'."


def test_short_answer_tasks_ask_llavas_prompt_under_the_same_hash():
    tasks = discover()
    expected = {
        "vqav2_val": "{question}\n" + SHORT, "vqav2_testdev": "{question}\n" + SHORT,
        "gqa_testdev_balanced": "{question}\n" + SHORT, "pope": "{question}\n" + SHORT,
        "textvqa_val": "{question}\n" + SHORT, "textvqa_val_ocr": "{question}{ocr_line}\n" + SHORT,
        "vizwiz_vqa_val": "{question}\n" + UNANSWERABLE + "\n" + SHORT,
        "vizwiz_vqa_test": "{question}\n" + UNANSWERABLE + "\n" + SHORT,
    }
    for name, prompt in expected.items():
        t = tasks[name]
        assert t.prompt == prompt, name
        assert t.prompt_hash == hashlib.sha256(prompt.encode()).hexdigest()[:16], name
        assert t.adapter_kind == "generate" and t.generation_kwargs == {"max_new_tokens": 128}, name


def test_include_gives_defaults_the_file_overrides(tmp_path):
    (tmp_path / "_base.yaml").write_text("adapter_kind: generate\nprompt: 'base {question}'\n"
                                         "generation_kwargs: {max_new_tokens: 7}\n")
    (tmp_path / "mid.yaml").write_text("include: _base.yaml\ngeneration_kwargs: {max_new_tokens: 3}\n")
    d = tmp_path / "t"
    d.mkdir()
    (d / "t.yaml").write_text("task: toy\ninclude: ../mid.yaml\nprompt: 'own {question}'\nmetrics: [exact_match]\n")
    t = _load_yaml(d / "t.yaml")
    assert (t.prompt, t.generation_kwargs, t.adapter_kind) == ("own {question}", {"max_new_tokens": 3}, "generate")


@pytest.mark.parametrize("body, message", [
    ("include: nowhere.yaml\n", "nowhere.yaml: no such task file"),
    ("include: t.yaml\n", "loops back"),
    ("include: [a.yaml, b.yaml]\n", "takes one file path"),
])
def test_a_bad_include_names_the_file(tmp_path, body, message):
    (tmp_path / "t.yaml").write_text("task: toy\n" + body)
    with pytest.raises(ConfigError, match=message):
        _load_yaml(tmp_path / "t.yaml")
