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
