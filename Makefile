# The front door: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch/torchvision are pinned to the builds this machine serves from disk; an unpinned
# torch would pull gigabytes.
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-fast bench clean protos

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/wobbledetect demo --out demo-output

test: $(STAMP)
	$(BIN)/python -m pytest

# The fast lane: everything but the tests marked slow (training, whole scripts); ~1 min.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# The gRPC stubs in wobbledetect/v1/, from proto/ (the pinned generator; never edit them).
protos: $(STAMP)
	$(BIN)/python proto/generate.py

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) demo-output bench-output .pytest_cache *.egg-info
