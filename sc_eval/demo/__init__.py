"""`sc-eval demo`, an application of the library: the paper's comparison in miniature on the
embedded world (``command``: its flags; ``pipeline``: each stage run as the sc-eval command a user
would type; ``tiny_lm``: the small language models trained on the world's text that the demo's
ClipCap and LLaVA stages are given)."""
