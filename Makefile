# The two commands of the README:
#   make demo   run the whole chain built so far on embedded procedural data
#   make test   run the test suite
# Both create .venv on first use (python3.11 -m venv + pip) and reuse it after; the stamp is keyed
# on the requirement files, so editing requirements.txt or setup.py reinstalls.
PYTHON   ?= python3.11
VENV     ?= .venv
REQ_HASH := $(shell cat requirements.txt setup.py | sha256sum | cut -c1-16)
STAMP    := $(VENV)/.installed-$(REQ_HASH)
DEMO_OUT ?= demo-out
# Label Studio lives in its own venv (it pins Django and pyarrow versions that clash with ours).
LS_VENV  ?= .labelstudio-venv
LS_STAMP := $(LS_VENV)/.installed-label-studio-$(shell sed -n 's/^LABEL_STUDIO_VERSION = "\(.*\)"/\1/p' annotation/ls_venv.py)
PYTEST_ARGS ?=
SUDO     ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: venv labelstudio chromium test demo bench sdist clean

venv: $(STAMP)

$(STAMP):
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

$(LS_STAMP):
	$(PYTHON) -m molmo2_data annotate server install --venv $(LS_VENV)

labelstudio: $(LS_STAMP)

# The report test screenshots report.html in headless Chromium (Debian's package).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

test: venv $(LS_STAMP) chromium
	$(VENV)/bin/python -m pytest --durations=25 $(PYTEST_ARGS)

demo: venv $(LS_STAMP)
	$(VENV)/bin/molmo2-data demo --out $(DEMO_OUT)

bench: venv
	@for b in benchmarks/[a-z]*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

sdist: venv
	$(VENV)/bin/python setup.py -q sdist

clean:
	rm -rf build dist *.egg-info $(DEMO_OUT) .pytest_cache
