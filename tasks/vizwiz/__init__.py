"""VizWiz-VQA (val scored with VQA accuracy; test written as an EvalAI submission)."""
