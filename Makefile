# glt-bench: `make demo` (set-up + the main job on fashion-glt) and `make test` (set-up + tests).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
GLT := $(VENV)/bin/glt-bench
STAMP := $(VENV)/.installed
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
DEMO ?= demo-output
RESULTS ?= results
SEEDS ?= 0 1 2
SWEEP ?= docs/results-sweep.txt
JOBS ?= 2
# time STAGE COMMAND: run a command and print its wall time.
timed = s=$$(date +%s%N); $(2); rc=$$?; echo "[demo] $(1): $$(( ($$(date +%s%N) - s) / 1000000 )) ms"; [ $$rc -eq 0 ]

.PHONY: setup data demo test bench results lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

# Fashion-MNIST from Debian's package when we may install it; glt-bench itself falls back to
# torchvision's downloader (and says so clearly when there is no network). Chromium and its driver
# for the report's browser test (which fails without them) come the same way, slurm-wlm + munge
# for the sweep's tests against a real one-node Slurm, pdflatex (with booktabs) and LibreOffice Calc
# for the report's export tests (which skip without them, saying so).
data:
	@missing=""; \
	[ -f $(FASHION) ] || missing="$$missing dataset-fashion-mnist"; \
	[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || missing="$$missing chromium chromium-driver"; \
	[ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/munged ] || missing="$$missing slurm-wlm munge"; \
	[ -x /usr/bin/pdflatex ] && kpsewhich booktabs.sty >/dev/null 2>&1 || missing="$$missing texlive-latex-base texlive-latex-recommended"; \
	[ -x /usr/bin/soffice ] || missing="$$missing libreoffice-calc-nogui"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

demo:
	@$(call timed,set-up (venv + data),$(MAKE) --no-print-directory setup data)
	@$(call timed,build-splits fashion-glt,$(GLT) build-splits --benchmark fashion-glt --manifests $(DEMO)/manifests)
	@$(call timed,run ce (Train-GLT → CLT+GLT; Train-CBL → ALT),$(GLT) run --benchmark fashion-glt --method ce --protocol all --manifests $(DEMO)/manifests --out $(DEMO)/runs)
	@$(call timed,report,$(GLT) report --runs $(DEMO)/runs --manifests $(DEMO)/manifests --out $(DEMO)/report)
	@$(call timed,verify,$(GLT) verify --runs $(DEMO)/runs --manifests $(DEMO)/manifests)
	@echo "[demo] leaderboard: $(abspath $(DEMO))/report/index.html"

test: setup data
	@$(VENV)/bin/pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: a failure for glt-bench" >&2; fi; exit $$rc

bench: setup data
	$(PY) bench/score_throughput.py
	$(PY) bench/cpu_throughput.py
	PYTHONPATH=. $(PY) bench/train_throughput.py
	PYTHONPATH=. $(PY) bench/extract_throughput.py
	PYTHONPATH=. $(PY) bench/dpp_scale.py
	PYTHONPATH=. $(PY) bench/features_memory.py
	PYTHONPATH=. $(PY) bench/cluster_time.py
	PYTHONPATH=. $(PY) bench/sweep_submit.py

# The README's fashion-glt table: every line of docs/results-sweep.txt × SEEDS under all protocols,
# through the sweep's local launcher, JOBS single-threaded processes at a time (deterministic CPU
# numbers); finished runs are skipped, interrupted ones resume. SWEEP=FILE runs other lines (e.g.
# only new methods) and still rewrites the whole table. `glt-bench status` with the same arguments
# shows progress from another terminal.
comma := ,
results: setup data
	$(GLT) build-splits --benchmark fashion-glt --manifests $(RESULTS)/manifests
	$(GLT) sweep $(SWEEP) --benchmark fashion-glt --seeds "$(subst $() ,$(comma),$(strip $(SEEDS)))" \
		--device cpu --threads 1 --jobs $(JOBS) --manifests $(RESULTS)/manifests --out $(RESULTS)/runs
	$(GLT) report --runs $(RESULTS)/runs --out $(RESULTS)/report --readme README.md

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(DEMO) $(RESULTS) .pytest_cache .ruff_cache
