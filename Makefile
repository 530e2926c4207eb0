# Set-up and entry points. `make run` and `make test` each create .venv and install on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint install clean mini-collapse

install: $(STAMP)

# CPU torch first where a local CPU wheel exists (these machines); elsewhere pip picks the user's torch.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0+cpu" 2>/dev/null \
		|| echo "no local CPU torch wheel: pip will choose torch"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The main job: a 3-generation CPU loop that publishes every generation to the embedded Hub, then its report.
run: $(STAMP)
	$(VENV)/bin/scl-hf run --config configs/smoke.yaml
	$(VENV)/bin/scl-hf report runs/smoke

# CPU science check (docs/RESULTS.md): full_synthetic against expanding with 25% fresh data.
# The CPU recipe (configs/cpu/base.yaml, 15 generations) under full_synthetic and expanding with 25% fresh data.
mini-collapse: $(STAMP)
	$(VENV)/bin/scl-hf run --config configs/cpu/full_synthetic.yaml --publish false
	$(VENV)/bin/scl-hf run --config configs/cpu/expanding_fresh25.yaml --publish false
	$(VENV)/bin/scl-hf report runs/cpu_full_synthetic runs/cpu_expanding_fresh25 --output runs/mini_collapse

test: $(STAMP)
	$(PY) -m pytest -q
	$(VENV)/bin/ruff check .

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
