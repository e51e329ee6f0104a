# pinned — make demo | make test | make bench | make clean  (run as root on Debian 12)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYINFRA := $(VENV)/bin/pyinfra
HOST_PACKAGES := debootstrap systemd-container iptables iproute2 openssh-client curl git python3-venv shellcheck pebble openssl time
REPO := .build/agroguia

.PHONY: demo test unit lint e2e bench clean deps venv images repo

deps:  ## Debian packages the sandbox and the tests need (installed only when missing)
	@missing=$$(for p in $(HOST_PACKAGES); do dpkg-query -W -f='$${db:Status-Status}\n' $$p 2>/dev/null | grep -qx installed || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

$(VENV)/.ready: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.ready

images: deps venv  ## the cached base images and warm layers, Debian 12 and 13 (built once each)
	$(PY) -m pinned.sandbox image

repo: venv  ## the example app's git repository (deterministic commits A to H)
	$(PY) examples/build_repo.py $(REPO)

demo: deps venv images repo  ## boot the sandbox host, deploy the example app, print its URL
	$(PY) -m pinned.sandbox up --topology single
	$(PYINFRA) -y inventory.py deploy.py
	@url=$$($(PY) -c 'from pinned.sandbox.core import Sandbox; print("http://%s/" % Sandbox.load().hosts[0].address)'); \
	echo; echo "The example app is online at $$url"; curl -fsS "$$url" | grep -E 'Release|<li>'

lint: venv  ## shellcheck on the scripts that run on the hosts, ruff on the Python (settings: pyproject.toml)
	@command -v shellcheck >/dev/null || { echo "shellcheck is missing: run make deps (Debian package shellcheck)"; exit 1; }
	shellcheck -S warning operations/remote/*.sh bench/remote/*.sh
	$(VENV)/bin/ruff check --extend-exclude .venv,.build,.cache .

unit: venv lint  ## fast tests, no hosts
	$(PY) -m pytest -q -m 'not sandbox'

# Test modules run on TEST_WORKERS pytest-xdist workers, a module at a time per worker (its hosts stay on it).
TEST_WORKERS ?= 2

test: deps venv images repo lint  ## the whole suite: unit tests and end-to-end tests on sandbox hosts
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: deps venv images repo  ## benchmarks: figures and ratios (bench/results.json)
	$(PY) -m bench

clean:  ## stop the sandbox hosts and remove what the demo made (the image cache stays)
	-$(PY) -m pinned.sandbox down
	rm -rf .build .cache
