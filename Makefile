# Two commands do all the set-up on a fresh machine:
#   make demo   # venv + install + label examples/images with ontologies/example.yaml (real default models)
#   make test   # venv + install dev deps + run the test suite (offline, tiny random-weight models)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch/torchvision pinned to the releases known to work (pip takes local wheels where present)
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
DEMO_OUT ?= runs/demo
DEMO_ARGS ?=
ifdef DETECTOR_MODEL
DEMO_ARGS += --detector-model $(DETECTOR_MODEL)
endif
ifdef SEGMENTER_MODEL
DEMO_ARGS += --segmenter-model $(SEGMENTER_MODEL)
endif

.PHONY: demo test bench browser install install-dev tools lint docs clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# FiftyOne needs opencv-python-headless < 5; ultralytics asks for opencv-python (the GUI build). Both wheels
# provide the same `cv2` package: the headless files are installed last, and `pip check` stays clean.
OPENCV_PINS := 'opencv-python-headless>=4.8,<5'

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml
	$(PIP) install $(TORCH_PINS)
	$(PIP) install -e '.[models,fiftyone]' $(OPENCV_PINS)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e '.[models,fiftyone,ray,cloud,video,train,docs,dev]' $(OPENCV_PINS) 'opencv-python>=4.8,<5'
	$(PIP) install --force-reinstall --no-deps $(OPENCV_PINS)
	$(PIP) check
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The annotation tools the tests check against, each in its own environment: they pin other NumPy / OpenCV /
# Pillow versions than the project's (Label Studio ≈ 1 GB with its SDK, datumaro ≈ 0.7 GB; ≈ 1.5 min to install).
LABELSTUDIO_VENV ?= .venv-labelstudio
DATUMARO_VENV ?= .venv-datumaro
$(LABELSTUDIO_VENV)/.installed:
	$(PYTHON) -m venv $(LABELSTUDIO_VENV)
	$(LABELSTUDIO_VENV)/bin/python -m pip install -q 'label-studio==1.23.2'
	touch $@
$(DATUMARO_VENV)/.installed:
	$(PYTHON) -m venv $(DATUMARO_VENV)
	$(DATUMARO_VENV)/bin/python -m pip install -q 'datumaro[cli]==1.13.12'
	touch $@
tools: $(LABELSTUDIO_VENV)/.installed $(DATUMARO_VENV)/.installed
TOOLS_ENV := AUTOLABEL_REQUIRE_TOOLS=1 AUTOLABEL_LABELSTUDIO_PYTHON=$(abspath $(LABELSTUDIO_VENV))/bin/python \
	AUTOLABEL_DATUMARO_PYTHON=$(abspath $(DATUMARO_VENV))/bin/python

demo: $(VENV)/.installed
	$(VENV)/bin/autolabel label ontologies/example.yaml examples/images -o $(DEMO_OUT) $(DEMO_ARGS)

test: $(VENV)/.installed-dev tools docs
	$(TOOLS_ENV) $(PY) -m pytest -q -n 2 --dist loadfile

# the documentation site (docs/, mkdocs.yml): offline, strict (a warning, a broken link or anchor fails it);
# the command-line reference is generated from the Typer app, the API reference from the docstrings
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -q

# speed/memory ratios with real-size random-weight architectures and the tiny models (minutes on CPU)
BENCH_ARGS ?=
bench: $(VENV)/.installed-dev
	$(PY) -m bench.labeling $(BENCH_ARGS)
	$(PY) -m bench.gpu_sim $(GPUSIM_ARGS)
	$(PY) -m bench.cuda $(CUDA_ARGS)
	$(PY) -m bench.tune
	$(PY) -m bench.ensemble
	$(PY) -m bench.sam3_sim
	$(PY) -m bench.ray_sim
	$(PY) -m bench.driver_commit
	$(PY) -m bench.video_memory
	$(PY) -m bench.serve
	$(PY) -m bench.report
	$(PY) -m bench.student

# headless Chromium for the optional App screenshot test (Debian/Ubuntu, as root)
browser:
	apt-get update && apt-get install -y chromium

# ruff (E,F,I,UP,B,RUF), ruff format, mypy on the package, import-linter contracts (pyproject.toml)
lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check autolabel tests bench
	$(VENV)/bin/ruff format --check autolabel tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) $(LABELSTUDIO_VENV) $(DATUMARO_VENV) runs .pytest_cache site
