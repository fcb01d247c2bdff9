# The README's two commands are `make demo` and `make test`; each installs what is missing first.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
STAMP   = $(VENV)/.hf_slm-installed
APT_PACKAGES = espeak-ng ffmpeg chromium pocketsphinx-testdata

.PHONY: install system-deps test test-all demo default-pipeline twist-pipeline space refresh-snapshots bench clean

system-deps:
	@missing=""; command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; command -v chromium >/dev/null || missing="$$missing chromium"; \
	dpkg -s pocketsphinx-testdata >/dev/null 2>&1 || missing="$$missing pocketsphinx-testdata"; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch 2.14.1 installs from this machine's local disk; torchaudio 2.11.0 works with it
	$(PIP) install -q torch==2.14.1 torchaudio==2.11.0
	$(PIP) install -q -e ".[dev,space,eval]"
	# resemblyzer pulls webrtcvad 2.0.10, whose module imports pkg_resources (gone from setuptools >= 81);
	# webrtcvad-wheels installs the same files without it, so it must be the one left in place
	$(PIP) uninstall -q -y webrtcvad
	$(PIP) install -q --force-reinstall --no-deps webrtcvad-wheels
	@touch $(STAMP)

install: system-deps $(STAMP)

test: install
	$(PY) -m pytest -q -m "not slow" tests

test-all: install
	$(PY) -m pytest -q tests

demo: install
	$(VENV)/bin/hf-slm demo --pipeline default --output demo_out

# Re-train the embedded default pipeline from scratch (CPU, see docs/default_pipeline.md).
default-pipeline: install
	$(PY) examples/default_pipeline/train_default.py --output hf_slm/default_pipeline

# Re-train the embedded TWIST-style variant (text LM first, then warm start; needs the GSLM default it references).
twist-pipeline: install
	$(PY) examples/default_pipeline/train_twist.py examples/default_pipeline/config_twist_cpu.json

# A deployable, self-contained Space folder (app.py + a copy of hf_slm + pinned PyPI requirements), see docs/space.md.
space: install
	$(PY) spaces/assemble.py --output space_build

# The embedded variants ship copies of the model code for trust_remote_code; refresh them after a fix in hf_slm/models.
refresh-snapshots:
	@for f in hf_slm/default*_pipeline/*/*.py; do \
	  src=$$(ls hf_slm/models/*/$$(basename $$f)); cmp -s "$$src" "$$f" || { cp "$$src" "$$f"; echo "refreshed $$f"; }; \
	done

bench: install
	$(PY) benchmarks/bench_tokenization.py --device cpu

clean:
	rm -rf demo_out space_build .pytest_cache
