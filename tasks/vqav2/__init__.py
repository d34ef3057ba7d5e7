"""VQAv2 (val2014 scored three ways; test-dev2015 written as an EvalAI submission)."""
