"""ScienceQA-IMG: the test questions that come with an image, LLaVA's prompt and parse."""
