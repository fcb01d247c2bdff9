# The README's two commands are `make demo` and `make test`; each installs what is missing first.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
STAMP   = $(VENV)/.hf_slm-installed
APT_PACKAGES = espeak-ng ffmpeg chromium pocketsphinx-testdata wordnet-base fortunes \
               festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts

.PHONY: install system-deps test test-all test-latest latest-env lock bench-import bench-gpu demo default-pipeline twist-pipeline space bench clean

system-deps:
	@missing=""; command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; command -v chromium >/dev/null || missing="$$missing chromium"; \
	dpkg -s pocketsphinx-testdata >/dev/null 2>&1 || missing="$$missing pocketsphinx-testdata"; \
	dpkg -s wordnet-base >/dev/null 2>&1 || missing="$$missing wordnet-base"; \
	dpkg -s fortunes >/dev/null 2>&1 || missing="$$missing fortunes"; \
	for voice in festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts; do \
	  dpkg -s $$voice >/dev/null 2>&1 || missing="$$missing $$voice"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

# What a fresh clone installs is the lock, .ci/constraints.txt: exact versions of every package (all extras, pip and
# setuptools too), written by `make lock` from an environment that passed the suite. pyproject.toml keeps the ranges.
LOCK    = .ci/constraints.txt
EXTRAS  = .[dev,space,eval,instruct]
# torch 2.14.1 installs from this machine's local disk; torchaudio 2.11.0 works with it
TORCH   = torch==2.14.1 torchaudio==2.11.0

# resemblyzer pulls webrtcvad 2.0.10, whose module imports pkg_resources (gone from setuptools >= 81);
# webrtcvad-wheels installs the same files without it, so it must be the one left in place
define swap_webrtcvad
	$(1) -m pip uninstall -q -y webrtcvad
	$(1) -m pip install -q --force-reinstall --no-deps $(2) webrtcvad-wheels
endef

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c $(LOCK) pip setuptools wheel
	$(PIP) install -q -c $(LOCK) $(TORCH)
	$(PIP) install -q -c $(LOCK) -e "$(EXTRAS)"
	$(call swap_webrtcvad,$(PY),-c $(LOCK))
	@touch $(STAMP)

install: system-deps $(STAMP)

test: install
	$(PY) -m pytest -q -m "not slow" --durations=25 tests

test-all: install
	$(PY) -m pytest -q tests

# The newest versions that pyproject.toml allows, in a venv of their own (.venv-latest): how a dependency's new
# release that breaks us is found before users find it.
LATEST = .venv-latest
latest-env: system-deps
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip setuptools wheel
	$(LATEST)/bin/python -m pip install -q $(TORCH)
	$(LATEST)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e "$(EXTRAS)"
	$(call swap_webrtcvad,$(LATEST)/bin/python,)

test-latest: latest-env
	$(LATEST)/bin/python -m pip list --format freeze | grep -iE '^(transformers|torch|datasets|peft|accelerate|trl|gradio|huggingface.hub)=='
	$(LATEST)/bin/python -m pytest -q -m "not slow" tests

# Refresh the lock: the newest allowed versions, kept only if the suite passes on them (README.md, "Installs: the lock and the newest versions").
lock: test-latest
	$(LATEST)/bin/python -m pip freeze --all --exclude-editable > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	@echo "wrote $(LOCK): $$(wc -l < $(LOCK)) packages"

demo: install
	$(VENV)/bin/hf-slm demo --pipeline default --output demo_out

# Re-train the embedded default pipeline from scratch (CPU, see docs/default_pipeline.md). Stages are cached under the
# config's work_dir; rerun after a kill. Open vocabulary + augmentation:
#   make default-pipeline DEFAULT_CONFIG=examples/default_pipeline/config_open_vocab_cpu.json [DEFAULT_ARGS="--device cuda"]
DEFAULT_CONFIG ?= examples/default_pipeline/config_cpu.json
DEFAULT_ARGS   ?=
default-pipeline: install
	$(PY) examples/default_pipeline/train_default.py $(DEFAULT_CONFIG) $(DEFAULT_ARGS)

# Re-train the embedded TWIST-style variant (text LM first, then warm start; needs the GSLM default it references).
twist-pipeline: install
	$(PY) examples/default_pipeline/train_twist.py examples/default_pipeline/config_twist_cpu.json

# A deployable, self-contained Space folder (app.py + a copy of hf_slm + pinned PyPI requirements), see docs/space.md.
space: install
	$(PY) spaces/assemble.py --output space_build

bench: install
	$(PY) benchmarks/bench_tokenization.py --device cpu

bench-import: install
	$(PY) benchmarks/bench_import.py

# The GPU figures of docs/benchmarks.md in one call (logs in gpu_figures/); TINY=1 checks it on the CPU.
bench-gpu: install
	PYTHON=$(PY) bash benchmarks/gpu_figures.sh

clean:
	rm -rf demo_out space_build .pytest_cache $(LATEST)
