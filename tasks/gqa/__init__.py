"""GQA testdev-balanced, LLaVA's exact-match accuracy."""
