"""TextVQA 0.5.1 val, without and with the Rosetta OCR tokens in the prompt (LLaVA)."""
