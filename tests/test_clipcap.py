"""ClipCap: captions of a batch equal captions decoded alone, training learns, adapters round-trip,
resume continues exactly, and the COCO caption task scores the published oracle."""
import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from sc_eval.adapters.clipcap.decode import beam_search, generate_captions, stop_token_ids  # noqa: E402
from sc_eval.adapters.clipcap.mapper import MapperConfig  # noqa: E402
from sc_eval.adapters.clipcap.model import (build_model, caption_token_ids, load_adapter,  # noqa: E402
                                            save_adapter)
from sc_eval.adapters.clipcap.train import TrainConfig, collate, fit, tokenize_captions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EOS, DOT = 50256, 13
CAPTIONS = ["a red circle on the left.", "two blue squares at the top",
            "a green triangle and a yellow star", "a purple cross in the middle"]


@pytest.fixture(scope="module")
def tok():
    from sc_eval.models.tokenizers import gpt2_tokenizer

    return gpt2_tokenizer()


def tiny_lm(seed=0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    # a wider initialisation than GPT-2's 0.02 gives peaked, input-dependent next-token choices
    cfg = GPT2Config(vocab_size=50257, n_layer=2, n_embd=64, n_head=2, n_positions=128,
                     bos_token_id=EOS, eos_token_id=EOS, initializer_range=0.2)
    return GPT2LMHeadModel(cfg).eval()


def tiny_model(kind="transformer", seed=0, width=32, lm=None, normalize=False):
    cfg = MapperConfig(kind=kind, input_width=width, lm_width=64, prefix_length=4, clip_length=4,
                       num_layers=2, num_heads=4, normalize_prefix=normalize)
    model = build_model(cfg, lm if lm is not None else tiny_lm(seed), lm_frozen=(kind == "transformer"))
    torch.manual_seed(seed + 1)
    for p in model.mapper.parameters():  # a larger prefix makes captions depend on the image
        torch.nn.init.normal_(p, std=0.3)
    return model.eval()


def features(n, width=32, seed=0):
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("beam", [5, 1])
def test_batched_captions_equal_captions_decoded_alone(tok, beam):
    model = tiny_model()
    feats = features(12)
    stops = stop_token_ids(tok)
    batched = beam_search(model, feats, beam=beam, max_new_tokens=12, stop_ids=stops, eos_id=EOS)
    alone = [beam_search(model, feats[i:i + 1], beam=beam, max_new_tokens=12, stop_ids=stops,
                         eos_id=EOS)[0] for i in range(len(feats))]
    assert batched == alone
    assert len({tuple(c) for c in batched}) >= 3, "captions should differ between images"
    # and through the text API, in chunks of 5 images
    texts = generate_captions(model, tok, feats, beam=beam, max_new_tokens=12, batch_size=5)
    assert texts == [tok.decode(c).strip() for c in alone]


def test_greedy_is_the_argmax_of_a_cache_free_forward(tok):
    model = tiny_model(seed=3)
    feats = features(3, seed=3)
    got = beam_search(model, feats, beam=1, max_new_tokens=10, stop_ids=stop_token_ids(tok), eos_id=EOS)
    emb = model.lm.get_input_embeddings()
    with torch.no_grad():
        for i in range(3):
            prefix, ids = model.prefix_embeds(feats[i:i + 1]), []
            for _ in range(10):
                x = torch.cat([prefix, emb(torch.tensor([ids], dtype=torch.long))], 1) if ids else prefix
                nxt = int(model.lm(inputs_embeds=x).logits[0, -1].argmax())
                ids.append(nxt)
                if nxt in (EOS, DOT):
                    break
            assert got[i] == [t for t in ids if t != EOS]


def test_decoding_stops_at_period_or_eos_and_at_the_token_limit(tok):
    model = tiny_model(seed=5)
    with torch.no_grad():  # make "." likely after some contexts (its tied embedding row grows)
        model.lm.get_input_embeddings().weight[DOT] *= 3
    stops = stop_token_ids(tok)
    assert stops == [DOT, EOS]
    feats = features(16, seed=5)
    out = beam_search(model, feats, beam=3, max_new_tokens=6, stop_ids=stops, eos_id=EOS)
    for ids in out:
        assert EOS not in ids and 1 <= len(ids) <= 6
        assert DOT not in ids[:-1], "nothing is generated after a stop token"
    early = [ids for ids in out if len(ids) < 6]
    assert early and all(ids[-1] == DOT for ids in early)
    assert any(len(ids) == 6 for ids in out)
    assert out == [beam_search(model, feats[i:i + 1], beam=3, max_new_tokens=6, stop_ids=stops,
                               eos_id=EOS)[0] for i in range(16)]


def early_stopping_model(seed=5):
    model = tiny_model(seed=seed)
    with torch.no_grad():  # make "." likely after some contexts (its tied embedding row grows)
        model.lm.get_input_embeddings().weight[DOT] *= 3
    return model


@pytest.mark.parametrize("beam", [5, 1])
def test_gpt2_shared_prefix_decoder_equals_the_library_cache_decoder(tok, beam):
    """The GPT-2 decoder (prefix cache shared across beams, generated cache never reordered,
    images leaving the batch as they finish, buffers grown past 16 steps) gives the captions
    of transformers' own cache, with images that stop early and images that run to the limit."""
    from sc_eval.adapters.clipcap.decode import shares_prefix_cache

    stops = stop_token_ids(tok)
    lengths = []
    for model, feats in [(early_stopping_model(), features(16, seed=5)), (tiny_model(seed=2), features(3, seed=2))]:
        assert shares_prefix_cache(model.lm)
        fast = beam_search(model, feats, beam=beam, max_new_tokens=20, stop_ids=stops, eos_id=EOS)
        library = beam_search(model, feats, beam=beam, max_new_tokens=20, stop_ids=stops, eos_id=EOS,
                              shared_prefix=False)
        assert fast == library
        lengths.append({len(c) for c in fast})
    assert len(lengths[0]) >= 2 and max(lengths[0]) < 20, lengths  # images left the batch at different steps
    assert lengths[1] == {20}, lengths  # the cache grew past its first 16 steps


@pytest.mark.parametrize("scale_kw", [{"scale_attn_by_inverse_layer_idx": True}, {"scale_attn_weights": False}])
def test_gpt2_shared_prefix_decoder_follows_the_configs_attention_scale(tok, scale_kw):
    """GPT-2 variants that scale attention scores differently (by the inverse layer number, or
    not at all) decode to the captions of the LM's own forward, recomputed without a cache.
    The LM runs its eager attention, the one that honours these flags in every release (older
    releases' SDPA path ignores them)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from sc_eval.adapters.clipcap.decode import shares_prefix_cache

    torch.manual_seed(5)
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=50257, n_layer=3, n_embd=64, n_head=2, n_positions=128,
                                    bos_token_id=EOS, eos_token_id=EOS, initializer_range=0.2,
                                    attn_implementation="eager", **scale_kw)).eval()
    model = tiny_model(lm=lm, seed=5)
    assert shares_prefix_cache(model.lm)
    feats, stops = features(6, seed=5), stop_token_ids(tok)
    fast = beam_search(model, feats, beam=3, max_new_tokens=10, stop_ids=stops, eos_id=EOS)
    recomputed = beam_search(model, feats, beam=3, max_new_tokens=10, stop_ids=stops, eos_id=EOS, cache=False)
    assert fast == recomputed and len({tuple(c) for c in fast}) >= 3


def test_cache_free_reference_search_gives_the_same_captions(tok):
    """The benchmark's baseline (whole sequence recomputed each step, as the reference ClipCap
    decodes) must be the same search: same captions as the cached decoder, early stops included."""
    model, feats, stops = early_stopping_model(), features(5, seed=5), stop_token_ids(tok)
    cached = beam_search(model, feats, beam=3, max_new_tokens=10, stop_ids=stops, eos_id=EOS)
    recomputed = beam_search(model, feats, beam=3, max_new_tokens=10, stop_ids=stops, eos_id=EOS, cache=False)
    assert recomputed == cached and len({len(c) for c in cached}) >= 2


def test_other_language_models_decode_through_their_own_cache(tok):
    """A non-GPT-2 LM (a tiny Llama) takes the library-cache path; batching still changes nothing."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from sc_eval.adapters.clipcap.decode import shares_prefix_cache

    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=50257, hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      initializer_range=0.2, eos_token_id=EOS, bos_token_id=EOS)).eval()
    model = tiny_model(lm=lm)
    assert not shares_prefix_cache(model.lm)
    feats, stops = features(6, seed=1), stop_token_ids(tok)
    batched = beam_search(model, feats, beam=5, max_new_tokens=8, stop_ids=stops, eos_id=EOS)
    alone = [beam_search(model, feats[i:i + 1], beam=5, max_new_tokens=8, stop_ids=stops,
                         eos_id=EOS)[0] for i in range(len(feats))]
    assert batched == alone and len({tuple(c) for c in batched}) >= 3
    with pytest.raises(ValueError, match="GPT-2"):
        beam_search(model, feats, beam=5, max_new_tokens=8, stop_ids=stops, eos_id=EOS, shared_prefix=True)


def test_captions_end_with_eos_and_padding_is_masked(tok):
    assert caption_token_ids(tok, " a red circle ", EOS, 40) == [64, 2266, 9197, EOS]
    assert caption_token_ids(tok, "a red circle", EOS, 3) == [64, 2266, EOS]
    model = tiny_model()
    feats = features(2)
    ex = [(0, caption_token_ids(tok, "a red circle", EOS, 40)),
          (1, caption_token_ids(tok, "two blue squares at the top of the image", EOS, 40))]
    with torch.no_grad():
        idx, ids, mask = collate(ex, pad_id=0)  # pad id 0 is GPT-2's real "!" token
        assert ids[0, 4:].tolist() == [0] * (ids.shape[1] - 4) and mask[0].sum() == 4
        batch = float(model(feats[idx], ids, mask))
        singles = [(float(model(feats[i:i + 1], torch.tensor([t]), torch.ones(1, len(t), dtype=torch.long))),
                    len(t)) for i, t in ex]
    expected = sum(l * n for l, n in singles) / sum(n for _, n in singles)  # token-weighted mean
    assert batch == pytest.approx(expected, rel=1e-5)


def test_loss_skipping_zero_output_rows_is_the_full_softmax_loss(tok):
    """The tiny LMs zero unused vocabulary rows; the fast loss must equal the plain one."""
    lm = tiny_lm()
    with torch.no_grad():
        lm.get_input_embeddings().weight[1000:] = 0.0
    fast, plain = tiny_model(lm=lm), tiny_model(lm=lm)
    plain.live_rows = None
    assert fast.n_zero_rows == 50257 - 1000
    ex = [(0, caption_token_ids(tok, "a red circle", EOS, 40)), (1, caption_token_ids(tok, "two stars", EOS, 40))]
    idx, ids, mask = collate(ex, pad_id=EOS)
    feats = features(2)
    with torch.no_grad():
        assert float(fast(feats[idx], ids, mask)) == pytest.approx(float(plain(feats[idx], ids, mask)), rel=1e-5)


@pytest.mark.parametrize("kind", ["transformer", "mlp"])
def test_mapper_trains_and_the_adapter_round_trips(tok, tmp_path, kind):
    model = tiny_model(kind)
    feats = features(4)
    examples = tokenize_captions(tok, [[c] for c in CAPTIONS], 40)
    cfg = TrainConfig(steps=40, batch_size=4, lr=1e-2, warmup=5, save_every=0)
    lm_before = {k: v.clone() for k, v in model.lm.state_dict().items()}
    out = fit(model, feats, examples, cfg, ckpt_dir=None, seed=0)
    losses = [v for _, v in out["losses"]]
    # A frozen random GPT-2 is hard to steer (observed ~11.2 -> ~7.3); a fine-tuned one learns
    # the four captions outright (observed -> ~0.1).
    assert sum(losses[-5:]) / 5 < (0.8 if kind == "transformer" else 0.1) * sum(losses[:5]) / 5
    lm_changed = any(not torch.equal(v, model.lm.state_dict()[k]) for k, v in lm_before.items())
    assert lm_changed == (kind == "mlp")  # GPT-2 frozen with the transformer mapper only

    lm_dir = tmp_path / "lm"
    model.lm.save_pretrained(str(lm_dir))
    tok.save_pretrained(str(lm_dir))
    caps = generate_captions(model, tok, feats, beam=5, max_new_tokens=20)
    adir = save_adapter(model, tmp_path / "adapter", lm_dir=lm_dir, tokenizer=tok,
                        encoder_fingerprint="enc123")
    cfg_json = json.loads((adir / "config.json").read_text())
    assert cfg_json["encoder_fingerprint"] == "enc123" and cfg_json["mapper"]["kind"] == kind
    assert (adir / "lm").is_dir() == (kind == "mlp")
    shutil.rmtree(lm_dir) if kind == "mlp" else None  # a fine-tuned LM travels inside the adapter
    loaded, tok2, _ = load_adapter(adir)
    for k, v in model.mapper.state_dict().items():
        assert torch.equal(v, loaded.mapper.state_dict()[k]), k
    assert generate_captions(loaded, tok2, feats, beam=5, max_new_tokens=20) == caps
    if kind == "mlp":  # trained long enough to say the training caption of a training image
        greedy = generate_captions(loaded, tok2, feats[:1], beam=1, max_new_tokens=20)
        assert greedy == ["a red circle on the left."]


def test_training_resumes_after_a_kill_exactly(tok, tmp_path):
    feats = features(4)
    examples = tokenize_captions(tok, [[c] for c in CAPTIONS], 40)
    cfg = TrainConfig(steps=6, batch_size=3, lr=1e-3, warmup=2, save_every=3)
    straight = tiny_model()
    fit(straight, feats, examples, cfg, ckpt_dir=tmp_path / "a", seed=1)

    killed = tiny_model()
    calls = {"n": 0}
    real_forward = killed.forward

    def dying_forward(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:  # killed during step 5, after the step-3 checkpoint
            raise KeyboardInterrupt
        return real_forward(*a, **k)

    killed.forward = dying_forward
    with pytest.raises(KeyboardInterrupt):
        fit(killed, feats, examples, cfg, ckpt_dir=tmp_path / "b", seed=1)
    assert (tmp_path / "b" / "step_3.safetensors").exists()
    resumed = tiny_model()  # a fresh process: the same frozen LM, the mapper restored from disk
    with torch.no_grad():
        for p in resumed.mapper.parameters():
            p.add_(1.0)
    out = fit(resumed, feats, examples, cfg, ckpt_dir=tmp_path / "b", seed=1)
    assert out["resumed_from"] == 3 and [s for s, _ in out["losses"]] == [4, 5, 6]
    for k, v in straight.mapper.state_dict().items():
        assert torch.allclose(v, resumed.mapper.state_dict()[k], atol=1e-6), k


@pytest.mark.skipif(shutil.which("java") is None, reason="caption metrics need java")
def test_score_command_reproduces_the_coco_fake_caption_oracle(tmp_path, capsys, coco_val2014_annotations):
    """`sc-eval score coco_caption` goes through the task's score_loader and aggregate."""
    from sc_eval.cli import main

    results = REPO / "tests" / "data" / "coco-fakecap" / "captions_val2014_fakecap_results.json"
    assert results.is_file(), f"missing test data {results}"
    ann = coco_val2014_annotations
    out = tmp_path / "scores.json"
    assert main(["score", "coco_caption", "--predictions", str(results), "--annotations", str(ann),
                 "--output", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["n_docs"] == 1000
    m = got["metrics"]
    assert (round(m["bleu4"], 1), round(m["meteor"], 1), round(m["rouge_l"], 1),
            round(m["cider"], 1)) == (19.1, 19.5, 39.6, 60.0)


def test_recipes_clip_gradients_only_for_the_world(tmp_path):
    """The reference trains without gradient clipping (lr 2e-5); the world recipe's lr 1e-3 clips at 1."""
    import argparse

    from sc_eval.adapters.clipcap.command import add_arguments
    from sc_eval.adapters.clipcap.pipeline import _recipe
    from sc_eval.adapters.clipcap.train import TrainConfig

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--encoder", "x"])
    args.batch_size = None
    ref = _recipe(args, tmp_path)  # no world.json here: auto picks the reference recipe
    assert ref["name"] == "reference" and ref["grad_clip"] == 0 and ref["lr"] == 2e-5
    (tmp_path / "world.json").write_text("{}")
    world = _recipe(args, tmp_path)
    assert world["name"] == "world" and world["grad_clip"] == 1.0
    assert TrainConfig().grad_clip == 0  # the library default is the reference's


def test_mapper_init_does_not_depend_on_whether_the_lm_was_trained_first(cli_world, tmp_path):
    """The first `sc-eval caption` on a world trains and caches its tiny GPT-2 (drawing random
    numbers), later ones load it: the same command and seed must give the same mapper."""
    from sc_eval.adapters.clipcap import pipeline as cmd
    from sc_eval.demo.tiny_lm import build_tiny_lm, save_lm
    from tests.conftest import same_weights_whether_the_lm_was_trained_first

    lm, lm_tok = build_tiny_lm("gpt2", seed=0, n_embd=32, n_layer=1, n_head=2)
    lm_dir = save_lm(lm, lm_tok, tmp_path / "gpt2")
    argv = ["caption", "--encoder", "random:sc-vit-micro", "--lm", str(lm_dir), "--data-root", str(cli_world),
            "--steps", "2", "--limit", "1", "--greedy", "--max-new-tokens", "4"]
    assert same_weights_whether_the_lm_was_trained_first(argv, tmp_path, cmd, "_lm_dir", "mapper.safetensors")


def test_caption_without_java_stops_before_training(cli_world, tmp_path, monkeypatch, capsys):
    from sc_eval.cli import main

    monkeypatch.setenv("PATH", str(tmp_path / "no-java-here"))
    run = tmp_path / "run"
    assert main(["caption", "--encoder", "random:sc-vit-micro", "--lm", str(tmp_path / "unused"),
                 "--data-root", str(cli_world), "--steps", "2", "--output-dir", str(run)]) == 2
    assert "`java` not found on PATH" in capsys.readouterr().err
    assert not (run / "adapter").exists() and not (run / "checkpoints" / "last.pt").exists()


def _caption_in_a_fresh_process(hf_home: Path, argv: list[str]):
    """`sc-eval caption ARGV` with ``hf_home`` as the Hugging Face home (its cache is read when
    the process starts), offline."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "sc_eval", "caption", *argv], capture_output=True, text=True,
                          env=env, cwd=REPO)


def test_caption_without_lm_takes_gpt2_from_the_local_cache_or_says_what_to_pass(cli_world, tmp_path):
    """No --lm: GPT-2 from the local Hugging Face cache (never downloaded); when it is not there,
    exit 2 before any work, naming what to pass."""
    from sc_eval.demo.tiny_lm import build_tiny_lm, save_lm

    argv = ["--encoder", "random:sc-vit-micro", "--data-root", str(cli_world), "--steps", "1", "--limit", "1",
            "--greedy", "--max-new-tokens", "2", "--predict-only"]
    empty = _caption_in_a_fresh_process(tmp_path / "no-hf", [*argv, "--output-dir", str(tmp_path / "r0")])
    assert empty.returncode == 2, empty.stderr
    err = empty.stderr.strip().splitlines()[-1]
    assert err.startswith("sc-eval: error: --lm not given") and "openai-community/gpt2" in err
    assert "--lm DIR" in err and "--lm random:gpt2" in err
    assert not (tmp_path / "r0").exists()

    # GPT-2 as the Hub's cache holds it: refs/main names the snapshot folder with the files.
    repo = tmp_path / "hf" / "hub" / "models--openai-community--gpt2"
    commit = "0123456789abcdef0123456789abcdef01234567"
    lm, lm_tok = build_tiny_lm("gpt2", seed=0, n_embd=32, n_layer=1, n_head=2)
    snapshot = save_lm(lm, lm_tok, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    got = _caption_in_a_fresh_process(tmp_path / "hf", [*argv, "--output-dir", str(tmp_path / "r1")])
    assert got.returncode == 0, got.stderr
    assert json.loads((tmp_path / "r1" / "adapter" / "config.json").read_text())["lm"] == str(snapshot)
