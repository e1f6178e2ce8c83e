# Two commands on a fresh machine (no GPU needed):
#   make demo   installs fomm_kp and runs the main job on the bundled sample (~10 min on 2 cores)
#   make test   installs fomm_kp with test extras and runs the test suite
# torch is pinned through constraints.txt to the CPU build used on the development machines.

PYTHON ?= python3
PIP_INSTALL = $(PYTHON) -m pip install -q -c constraints.txt

.PHONY: install install-test demo test test-fast

install:
	$(PIP_INSTALL) -e ".[interop,deploy,dev]"

install-test:
	$(PIP_INSTALL) -e ".[interop,deploy,dev,field]"

demo: install
	fomm-kp demo --out demo_out

test: install-test
	$(PYTHON) -m pytest -q

test-fast: install-test
	$(PYTHON) -m pytest -q -m "not slow"
