"""The feature cache: same features as a direct pass, and a hit never runs the encoder."""
import pytest
import torch
from PIL import Image

from sc_eval import load_encoder
from sc_eval.encoders.features import encode_images
from sc_eval.errors import ConfigError, DataError


class CountingEncoder(torch.nn.Module):
    """Wraps an Encoder and counts how many images go through each forward."""

    def __init__(self, enc):
        super().__init__()
        self.enc = enc
        self.calls = 0
        self.fingerprint, self.transform, self.width = enc.fingerprint, enc.transform, enc.width
        self.num_patches, self.spec = enc.num_patches, enc.spec

    def forward_pooled(self, x):
        self.calls += x.shape[0]
        return self.enc.forward_pooled(x)

    def forward_tokens(self, x, layer=-2):
        self.calls += x.shape[0]
        return self.enc.forward_tokens(x, layer=layer)


@pytest.fixture()
def images(tmp_path):
    paths = []
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 200, 0), (10, 10, 10)]):
        p = tmp_path / "img" / f"{i}.png"
        p.parent.mkdir(exist_ok=True)
        Image.new("RGB", (40, 36), colour).save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def micro():
    return load_encoder("random:sc-vit-micro")


def test_cache_hit_does_not_re_encode(images, micro, tmp_path):
    enc = CountingEncoder(micro)
    cache = tmp_path / "cache"
    first = encode_images(enc, images, "shapes", "val", batch_size=2, cache_dir=cache, progress=False)
    assert enc.calls == 5 and first.shape == (5, 32)
    assert len(list(cache.glob("*.safetensors"))) == 1
    second = encode_images(enc, [str(p) for p in images], "shapes", "val", batch_size=3, cache_dir=cache)
    assert enc.calls == 5  # loaded, not re-encoded (batch size is not part of the key)
    torch.testing.assert_close(second, first, atol=0, rtol=0)

    # the features are those of a direct pass, in the given order
    x = torch.stack([micro.transform(Image.open(p)) for p in images])
    with torch.no_grad():
        torch.testing.assert_close(first, micro.forward_pooled(x), atol=1e-5, rtol=0)

    # anything that can change a feature makes a new entry
    encode_images(enc, images, "shapes", "test", cache_dir=cache, progress=False)
    encode_images(enc, images[::-1], "shapes", "val", cache_dir=cache, progress=False)
    assert enc.calls == 15 and len(list(cache.glob("*.safetensors"))) == 3


def test_a_rewritten_image_is_encoded_again(images, micro, tmp_path):
    """Same paths, new pixels (a re-downloaded dataset, a rewritten world): no stale features."""
    enc = CountingEncoder(micro)
    cache = tmp_path / "cache"
    first = encode_images(enc, images, "shapes", "val", cache_dir=cache, progress=False)
    Image.new("RGB", (40, 36), (255, 255, 255)).save(images[2])  # another colour at the same path
    second = encode_images(enc, images, "shapes", "val", cache_dir=cache, progress=False)
    assert enc.calls == 10
    torch.testing.assert_close(second[[0, 1, 3, 4]], first[[0, 1, 3, 4]], atol=0, rtol=0)
    assert not torch.allclose(second[2], first[2])


def test_tokens_and_layers_are_cached_separately(images, micro, tmp_path):
    enc = CountingEncoder(micro)
    cache = tmp_path / "cache"
    t2 = encode_images(enc, images[:2], "shapes", "val", kind="tokens", cache_dir=cache, progress=False)
    t1 = encode_images(enc, images[:2], "shapes", "val", kind="tokens", layer=-1, cache_dir=cache, progress=False)
    assert t2.shape == (2, 16, 32) and not torch.allclose(t1, t2)
    encode_images(enc, images[:2], "shapes", "val", kind="tokens", cache_dir=cache, progress=False)
    assert enc.calls == 4


def test_default_location_is_under_sc_eval_home(images, micro, monkeypatch, tmp_path):
    monkeypatch.setenv("SC_EVAL_HOME", str(tmp_path / "home"))
    encode_images(micro, images[:1], "shapes", "val", progress=False)
    assert len(list((tmp_path / "home" / "features").glob("*.safetensors"))) == 1


def test_repeated_paths_are_encoded_once(images, micro, tmp_path):
    enc = CountingEncoder(micro)
    feats = encode_images(enc, [images[0], images[1], images[0]], "shapes", "val", cache_dir=tmp_path, progress=False)
    assert enc.calls == 2
    torch.testing.assert_close(feats[0], feats[2], atol=0, rtol=0)


def test_corrupt_cache_file_is_recomputed(images, micro, tmp_path):
    enc = CountingEncoder(micro)
    first = encode_images(enc, images[:2], "shapes", "val", cache_dir=tmp_path, progress=False)
    (f,) = tmp_path.glob("*.safetensors")
    f.write_bytes(b"garbage")
    again = encode_images(enc, images[:2], "shapes", "val", cache_dir=tmp_path, progress=False)
    assert enc.calls == 4
    torch.testing.assert_close(again, first, atol=0, rtol=0)


def test_errors_name_the_problem(images, micro, tmp_path):
    with pytest.raises(DataError, match="missing.png"):
        encode_images(micro, [images[0], tmp_path / "missing.png"], "shapes", "val", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="kind"):
        encode_images(micro, images, "shapes", "val", kind="cls", cache_dir=tmp_path)
    assert not list(tmp_path.glob("*.safetensors"))
