"""The compatibility overlay: a virtualenv that sees the main one's packages behind its own.

``make test-compat`` runs the adapter, encoder and pretraining tests against the oldest library
versions pyproject promises (``ci/constraints-oldest.txt``) without a second torch: the overlay
is a virtualenv whose site-packages ends with a ``.pth`` line that adds the main virtualenv's
site-packages (with its own ``.pth`` files, so the editable sc-eval install works) AFTER the
overlay's own. pip, run from the overlay, finds torch and everything else already installed
there and installs only the pinned old releases, which shadow the main venv's new ones.

    python ci/compat_overlay.py create OVERLAY     # (re)create the overlay, linked to this venv
    OVERLAY/bin/python ci/compat_overlay.py check  # torch from the main venv, none in the overlay
"""
from __future__ import annotations

import importlib.metadata as md
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

PTH = "zz-sc-eval-main-venv.pth"  # sorts last: the overlay's own .pth files run first
TORCH_DISTS = ("torch", "torchvision", "torchaudio", "triton")


def _purelib(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def create(overlay: Path) -> None:
    main_site = Path(sysconfig.get_paths()["purelib"]).resolve()
    if overlay.exists():
        shutil.rmtree(overlay)
    venv.EnvBuilder(with_pip=True).create(overlay)
    site = _purelib(overlay / "bin" / "python")
    (site / PTH).write_text(f"import site; site.addsitedir({str(main_site)!r})\n", encoding="utf-8")
    print(f"overlay {overlay} -> packages of {main_site}")


def check() -> None:
    """Fail unless torch comes from the main venv and the overlay holds no torch of its own."""
    own = Path(sysconfig.get_paths()["purelib"]).resolve()
    pth = own / PTH
    if not pth.is_file():
        sys.exit(f"{own}: no {PTH}; run `python ci/compat_overlay.py create` first")
    extra = [d.metadata["Name"] for d in md.distributions(path=[str(own)])
             if d.metadata["Name"].lower() in TORCH_DISTS or d.metadata["Name"].lower().startswith("nvidia-")]
    if extra:
        sys.exit(f"{own}: the overlay installed its own {', '.join(sorted(extra))}; a constraint pulled in a "
                 "second torch (pin a release compatible with the main venv's)")
    import torch

    where = Path(torch.__file__).resolve()
    if own in where.parents:
        sys.exit(f"torch imports from the overlay ({where})")
    print(f"torch {torch.__version__} from {where.parent.parent}")
    for name in ("transformers", "peft", "timm", "open-clip-torch", "datasets", "tokenizers",
                 "huggingface-hub", "accelerate"):
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            print(f"{name} not installed")
            continue
        origin = "overlay" if Path(dist.locate_file("")).resolve() == own else "main venv"
        print(f"{name} {dist.version} ({origin})")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "create":
        create(Path(sys.argv[2]))
    elif len(sys.argv) == 2 and sys.argv[1] == "check":
        check()
    else:
        sys.exit(__doc__)
