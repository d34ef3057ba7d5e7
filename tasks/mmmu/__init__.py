"""MMMU validation: college-level multi-discipline questions, multiple choice and open."""
