# mailfleet: `make cluster` brings up, deploys and checks the container cluster;
# `make test` runs every test against it. Both install what they need first, and need root:
# they install Debian packages and run dockerd and debootstrap.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INVENTORY ?= inventories/local.py
# Debian packages the harness needs on the machine that runs the containers.
HOST_PACKAGES := docker.io debootstrap python3-venv

.PHONY: setup host-packages cluster deploy test unit down

setup: host-packages $(BIN)/mailfleet

host-packages:
	@if [ "$$(id -u)" -ne 0 ]; then \
	    echo "mailfleet: run as root (sudo make ...): the harness installs packages and runs dockerd"; \
	    exit 1; \
	fi
	@if ! dpkg -s $(HOST_PACKAGES) >/dev/null 2>&1; then \
	    echo "mailfleet: installing $(HOST_PACKAGES)"; \
	    apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(HOST_PACKAGES) >/dev/null; \
	fi

$(BIN)/mailfleet: pyproject.toml
	@echo "mailfleet: installing the project into $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,molecule]'
	@touch $@

cluster: setup
	$(BIN)/mailfleet cluster $(INVENTORY)

deploy: setup
	$(BIN)/mailfleet deploy $(INVENTORY)

# The compliance report is written even when tests fail; the target fails with pytest's status,
# or with the report's when every test passed.
test: setup
	@status=0; $(BIN)/pytest --junitxml=reports/junit.xml || status=$$?; \
	$(BIN)/mailfleet report --junit reports/junit.xml --out reports || \
	    { [ $$status -ne 0 ] || status=1; }; \
	exit $$status

unit: setup
	$(BIN)/pytest tests/unit

down: $(BIN)/mailfleet
	$(BIN)/mailfleet down
