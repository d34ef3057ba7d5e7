"""SEED-Bench (v1) image questions: four-way multiple choice, accuracy overall and per type."""
