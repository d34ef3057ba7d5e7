"""POPE object-hallucination probe: random, popular and adversarial splits in one task."""
