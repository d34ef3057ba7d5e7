"""sc-shapes: the embedded, procedurally generated image-text world.

Deterministic from a seed and written in the real dataset formats (see docs/internals.md for
the layout), so the demo and the tests exercise the same loaders as real data. ``build`` writes
a world (``write_world``) or the cached default one (``ensure_world``); ``sizes`` holds its
sizes and version, which `sc-eval world --help` reads without importing the writers.
"""
