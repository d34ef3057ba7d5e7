"""Tiny causal LMs trained on the world's text: exact loss, learning, offline reload, caching."""
import json

import pytest

torch = pytest.importorskip("torch")

CAPTIONS = [
    "a small red circle on the left",
    "a big blue square at the top",
    "there is a green triangle and a red circle",
    "two yellow stars at the bottom",
    "a purple cross in the middle",
]


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "text" / "corpus.txt"
    path.parent.mkdir()
    path.write_text("\n".join(CAPTIONS * 20) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_restricted_loss_equals_full_vocabulary_cross_entropy(kind, corpus):
    """The fast training loss must be the exact full-softmax loss once unused rows are zero."""
    from sc_eval.demo.tiny_lm import _exact_lm_loss, _token_stream, _zero_unused_rows, build_tiny_lm

    small = {"gpt2": dict(n_layer=1, n_embd=32, n_head=2),
             "llama": dict(num_hidden_layers=1, hidden_size=32, intermediate_size=64,
                           num_attention_heads=2, num_key_value_heads=2)}[kind]
    model, tok = build_tiny_lm(kind, seed=0, **small)
    model.eval()
    stream, _ = _token_stream(tok, kind, corpus)
    used, local = _zero_unused_rows(model, stream)
    vocab = model.get_output_embeddings().weight.shape[0]
    assert vocab == len(tok) and used.numel() < 100
    x = stream[:48].view(3, 16)
    with torch.no_grad():
        fast = _exact_lm_loss(model, x, used, local[x[:, 1:]], vocab - used.numel())
        logits = model(input_ids=x).logits[:, :-1].float()
        full = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), x[:, 1:].reshape(-1))
    assert float(fast) == pytest.approx(float(full), rel=1e-5)
    # the zeroed rows really give exactly-zero logits for ids the corpus never uses
    unused = torch.ones(vocab, dtype=torch.bool)
    unused[used] = False
    assert float(logits[..., unused].abs().max()) == 0.0


def test_llama_stream_holds_the_chat_dialogues_as_vicuna_text(corpus, tmp_path):
    """The Llama also reads LLaVA conversations, image dropped, exactly as LLaVA will prompt it."""
    import json

    from sc_eval.adapters.llava.templates import IMAGE_INDEX, VICUNA_SYSTEM
    from sc_eval.demo.tiny_lm import _token_stream, build_tiny_lm

    chat = tmp_path / "finetune.json"
    chat.write_text(json.dumps([{"id": "1", "image": "a.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat color is the star?"}, {"from": "gpt", "value": "purple"},
        {"from": "human", "value": "Is there a cross in the image?"}, {"from": "gpt", "value": "no"}]}]))
    _, tok = build_tiny_lm("llama", num_hidden_layers=1, hidden_size=16, intermediate_size=32,
                           num_attention_heads=2, num_key_value_heads=2)
    plain, n_plain = _token_stream(tok, "llama", corpus)
    both, n_both = _token_stream(tok, "llama", corpus, chat_path=chat, seed=0)
    assert n_both == n_plain + 1 and IMAGE_INDEX not in both.tolist()
    want = tok.encode(f"{VICUNA_SYSTEM} USER: What color is the star? ASSISTANT:", add_special_tokens=False)
    ids = both.tolist()
    starts = [i for i in range(len(ids) - len(want) + 1) if ids[i:i + len(want)] == want]
    assert len(starts) == 1  # the dialogue is there once, intact, and carries no image placeholder
    tail = ids[starts[0] + len(want):]
    answer = tok.encode("purple", add_special_tokens=False)
    assert tail[:len(answer) + 1] == answer + [tok.eos_token_id]


def test_gpt2_learns_the_corpus_and_reloads_offline(corpus, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sc_eval.demo.tiny_lm import train_tiny_lm

    out = train_tiny_lm("gpt2", tmp_path / "lm", corpus, steps=60, seed=0, batch_size=8, seq_len=32,
                        lr=1e-2, n_layer=1, n_embd=64)
    info = json.loads((out / "tinylm.json").read_text())
    assert info["first_loss"] > 9.0          # ~ln(50257) = 10.8 at random init
    assert info["final_loss"] < 2.0          # the 5-sentence corpus is learnt
    model = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True)
    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    assert len(tok) == 50257 and tok.eos_token_id == 50256
    assert model.config.vocab_size == 50257
    ids = tok("two yellow", return_tensors="pt").input_ids
    gen = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.eos_token_id)
    assert tok.decode(gen[0, ids.shape[1]:]).strip().startswith("stars")
    assert not list(tmp_path.glob(".lm.*")), "the temporary directory was left behind"


def test_llama_saves_with_its_sentencepiece_tokenizer(corpus, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sc_eval.demo.tiny_lm import train_tiny_lm

    out = train_tiny_lm("llama", tmp_path / "llama", corpus, steps=3, seed=0, batch_size=4, seq_len=16)
    model = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True)
    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    assert model.config.model_type == "llama"
    assert len(tok) == 32000 and (tok.bos_token_id, tok.eos_token_id) == (1, 2)
    assert tok("a red circle").input_ids[0] == 1  # BOS added
    n = sum(p.numel() for p in model.parameters())
    assert 2.0e6 < n < 3.5e6  # the ~2.7M-parameter Llama of the design


def test_ensure_tiny_lm_trains_once_next_to_the_world(corpus, tmp_path, monkeypatch):
    from sc_eval.demo import tiny_lm as tinylm

    world = corpus.parent.parent
    calls = []
    real = tinylm.train_tiny_lm

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **{**k, "batch_size": 4, "seq_len": 16})

    monkeypatch.setattr(tinylm, "train_tiny_lm", counting)
    first = tinylm.ensure_tiny_lm("gpt2", world_root=world, seed=0, steps=2)
    second = tinylm.ensure_tiny_lm("gpt2", world_root=world, seed=0, steps=2)
    assert first == second and first.parent == world.parent and len(calls) == 1
    with pytest.raises(Exception, match="unknown tiny LM kind"):
        tinylm.ensure_tiny_lm("gpt3", world_root=world)
    # a model saved under the key cut to 8 characters (an earlier version's folder) is the same
    # model: reused where it is, not trained again
    earlier = first.with_name(first.name[:-8])
    first.rename(earlier)
    assert len(first.name.rpartition("-")[2]) == 16
    assert tinylm.ensure_tiny_lm("gpt2", world_root=world, seed=0, steps=2) == earlier and len(calls) == 1


def test_a_save_killed_midway_leaves_the_saved_lm_whole(tmp_path):
    from sc_eval.demo.tiny_lm import build_tiny_lm, save_lm

    model, tok = build_tiny_lm("gpt2", seed=0)
    out = save_lm(model, tok, tmp_path / "lm", {"round": 1})
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    class Broken:
        def save_pretrained(self, path):
            raise KeyboardInterrupt("killed while saving")

    with pytest.raises(KeyboardInterrupt):
        save_lm(model, Broken(), out, {"round": 2})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["lm"]  # no temporary folder left behind
    save_lm(model, tok, out, {"round": 2})
    assert json.loads((out / "tinylm.json").read_text()) == {"round": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["lm"]
