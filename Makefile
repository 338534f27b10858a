# glt-bench: `make demo` (set-up + the main job on fashion-glt) and `make test` (set-up + tests).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
GLT := $(VENV)/bin/glt-bench
STAMP := $(VENV)/.installed
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
DEMO ?= demo-output
# time STAGE COMMAND: run a command and print its wall time.
timed = s=$$(date +%s%N); $(2); rc=$$?; echo "[demo] $(1): $$(( ($$(date +%s%N) - s) / 1000000 )) ms"; [ $$rc -eq 0 ]

.PHONY: setup data demo test bench lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

# Fashion-MNIST from Debian's package when we may install it; glt-bench itself falls back to
# torchvision's downloader (and says so clearly when there is no network).
data:
	@if [ ! -f $(FASHION) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	fi

demo:
	@$(call timed,set-up (venv + data),$(MAKE) --no-print-directory setup data)
	@$(call timed,build-splits fashion-glt,$(GLT) build-splits --benchmark fashion-glt --manifests $(DEMO)/manifests)
	@$(call timed,run ce (Train-GLT → CLT+GLT; Train-CBL → ALT),$(GLT) run --benchmark fashion-glt --method ce --protocol all --manifests $(DEMO)/manifests --out $(DEMO)/runs)
	@$(call timed,report,$(GLT) report --runs $(DEMO)/runs --out $(DEMO)/report)
	@echo "[demo] leaderboard: $(abspath $(DEMO))/report/index.html"

test: setup data
	@$(VENV)/bin/pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: a failure for glt-bench" >&2; fi; exit $$rc

bench: setup data
	$(PY) bench/score_throughput.py
	$(PY) bench/cpu_throughput.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
