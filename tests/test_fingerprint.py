"""Fingerprints: what they hash, their length, and how stored ones are compared."""
import hashlib

import torch

from sc_eval.runtime.fingerprint import LENGTH, Hasher, digest, same


def test_digest_is_the_sha256_of_canonical_json_cut_to_16():
    parts = {"b": [1, 2], "a": "x", "path": __import__("pathlib").Path("/d")}
    want = hashlib.sha256(b'{"a": "x", "b": [1, 2], "path": "/d"}').hexdigest()[:16]
    assert LENGTH == 16 and digest(parts) == want


def test_tensors_hash_names_dtypes_shapes_and_bytes():
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.zeros(0), "step": 3}
    h = hashlib.sha256()
    h.update(b"b|torch.float32|(0,)|")
    h.update(b"w|torch.float32|(2, 3)|" + torch.arange(6, dtype=torch.float32).numpy().tobytes())
    assert Hasher().tensors(state).hex(length=None) == h.hexdigest()
    # the same values held transposed (not contiguous) hash the same
    t = state["w"].t().contiguous().t()
    assert not t.is_contiguous()
    assert Hasher().tensors({"w": t, "b": torch.zeros(0)}).hex() == h.hexdigest()[:16]


def test_file_hash_reads_the_contents(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"\x00\x01" * (1 << 20) + b"tail")  # more than one 1 MiB chunk
    assert Hasher().file(f).hex() == hashlib.sha256(f.read_bytes()).hexdigest()[:16]


def test_stored_fingerprints_of_another_length_are_the_same_when_one_prefixes_the_other():
    full = hashlib.sha256(b"a setup").hexdigest()
    assert same(full[:20], full[:16]) and same(full[:16], full) and same("clipcap-" + full[:16], "clipcap-" + full[:16])
    assert not same(full[:20], hashlib.sha256(b"another setup").hexdigest()[:16])
    # short names are compared whole: a prefix of a few characters says nothing
    assert same("enc123", "enc123") and not same("enc", "enc123") and not same("", full[:16])
    assert not same(None, full[:16]) and same(None, None)
