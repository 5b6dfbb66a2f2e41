# Set-up is part of every target: a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo test test-slow mutate setup data browser clean

demo: setup data
	$(PY) -m slimforge demo

test: setup data browser
	$(PY) -m pytest -q

test-slow: setup data
	$(PY) -m pytest -q -m slow

# Mutation testing of the core modules ([tool.mutmut] in pyproject.toml, docs/testing.md):
# a fresh run each time (mutmut's cache would keep verdicts from before a test changed), then
# the kill rate per module and every mutant not killed. MUTANTS='slimforge.optimize.edge*'
# narrows it to some functions; MUTATE_JOBS sets the parallel workers.
MUTATE_JOBS ?= 2
mutate: setup
	rm -rf mutants && mkdir mutants
	OMP_NUM_THREADS=1 nice -n 10 $(PY) -m mutmut run --max-children $(MUTATE_JOBS) $(MUTANTS) >mutants/run.log 2>&1 || \
		{ tail -c 3000 mutants/run.log; exit 1; }
	$(PY) benchmarks/mutation_summary.py

setup: $(STAMP)

# torch/torchvision come from this machine's disk; requirements/torch.txt pins them as a
# constraint so no other package can move them.
$(STAMP): pyproject.toml requirements/torch.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/torch.txt -r requirements/torch.txt
	$(PY) -m pip install -q -c requirements/torch.txt -e '.[dev,onnx,quant,nlp,report,recsys,vision]'
	touch $(STAMP)

# Fashion-MNIST from Debian's package, when running as root and the files are absent.
data:
	@if [ ! -f $(FASHION_MNIST) ] && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null) || \
		echo "warning: could not install dataset-fashion-mnist; tests that need it will skip"; \
	fi

# Debian's Chromium renders the HTML report in a test (skipped where it cannot be installed).
browser:
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q chromium >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null) || \
		echo "warning: could not install chromium; the report rendering test will skip"; \
	fi

clean:
	rm -rf $(VENV) runs .pytest_cache mutants
