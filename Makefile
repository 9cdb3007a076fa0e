# Two commands: `make demo` (set up, then run the main job) and `make test`.
# Set-up is idempotent: it re-installs only when requirements*.txt or setup.* change.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
# ROS 2 tests talk over DDS on this host only (each test picks its own ROS_DOMAIN_ID).
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup demo test test-fast lint system-deps clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt setup.py setup.cfg
	@$(MAKE) --no-print-directory system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Debian packages the Python wheels load at run time: libusb for pyrealsense2, EGL for
# headless MuJoCo rendering. Installed only when missing and when we may (root or sudo).
system-deps:
	@missing=""; \
	ldconfig -p | grep -q 'libusb-1.0.so.0' || missing="$$missing libusb-1.0-0"; \
	ldconfig -p | grep -q 'libEGL.so.1' || missing="$$missing libegl1 libgl1-mesa-dri libegl-mesa0"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ]; then echo "robot_rl: please install Debian packages:$$missing"; \
	  else $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; fi; \
	fi

demo: setup
	$(VENV)/bin/robot-rl demo

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
