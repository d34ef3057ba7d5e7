"""sc-shapes: the embedded, procedurally generated image-text world.

Deterministic from a seed and written in the real dataset formats (see docs/internals.md for
the layout), so the demo and the tests exercise the same loaders as real data.
Numpy and Pillow are imported only when a world is written.
"""
from sc_eval.world.sizes import VERSION, WorldSizes


def write_world(out, seed: int = 0, **sizes):
    """Write the world under `out`; see :func:`sc_eval.world.build.write_world`."""
    from sc_eval.world.build import write_world as _write

    return _write(out, seed=seed, **sizes)


def ensure_world(root=None, seed: int = 0):
    """The cached default world for `seed`; see :func:`sc_eval.world.build.ensure_world`."""
    from sc_eval.world.build import ensure_world as _ensure

    return _ensure(root=root, seed=seed)


__all__ = ["VERSION", "WorldSizes", "ensure_world", "write_world"]
