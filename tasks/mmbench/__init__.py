"""MMBench (English dev/test): TSV with base64 images, letter accuracy, CircularEval, submission."""
