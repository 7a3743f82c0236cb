# `make demo` runs the product, `make test` runs the tests; each creates .venv
# and installs what it needs. `make proto` regenerates the wire code.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo install test proto lint bench clean

$(VENV)/.base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -e .
	touch $@

# torch is an optional extra: pin the CPU wheel explicitly (a bare `torch`
# requirement pulls a multi-GB CUDA build).
$(VENV)/.dev: $(VENV)/.base
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev,torch]'
	$(PIP) install -e ./compat/wandb
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/pulse demo

# `pulse` on your PATH without activating .venv: a link in ~/.local/bin (BIN=... for elsewhere).
BIN ?= $(HOME)/.local/bin
install: $(VENV)/.base
	mkdir -p $(BIN)
	ln -sf $(abspath $(VENV)/bin/pulse) $(BIN)/pulse
	@case ":$$PATH:" in *":$(BIN):"*) echo "pulse is in $(BIN)";; \
	  *) echo "pulse is in $(BIN), which is not on your PATH: add it (export PATH=\"$(BIN):\$$PATH\")";; esac

# Two workers, whole files each: most tests wait on subprocesses and servers, so two cores
# run the suite in about 10 minutes instead of 16.
test: $(VENV)/.dev
	$(PY) -m pytest -q -ra -n 2 --dist loadfile

proto: $(VENV)/.dev
	$(PY) -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. proto/pulse/v1/*.proto

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
