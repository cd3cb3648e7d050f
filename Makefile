# Two commands: `make lab` to learn, `make test` to check. Each sets itself up.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
SITE_STAMP := $(VENV)/.installed-site
# Tests read the offline data beside the repository when it is there.
COURSE_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
LAB_ARGS ?=
# The student copies that make test runs under nbval (all by default).
STUDENT_NOTEBOOKS ?= student
# Test processes (pytest-xdist; each file's tests, a notebook's cells, stay in one
# process, in order). Waiting OpenMP threads sleep instead of spinning: two
# processes of 2 threads on 2 cores then share them (spinning made each about 9x slower).
TEST_WORKERS ?= 2
# JupyterLab refuses to run as root unless told (containers, CI).
ROOT_ARG := $(if $(filter 0,$(shell id -u)),--allow-root,)
# The course's JupyterLab defaults (lab/overrides.json: no "get notified about official
# Jupyter news?" prompt over lesson 01), where this environment's JupyterLab reads the
# defaults of its packages. A learner's own settings still win over them.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.d/normalizing-flows-course.json

.PHONY: lab lab-settings test lint notebooks student setup site clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[lab,test]'
	touch $@

setup: $(STAMP)

# The website's tools (the `site` extra: Sphinx, myst-nb, sphinx-book-theme), only for
# `make site` and `make test`; `make lab` does not need them.
$(SITE_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install -e '.[site]'
	touch $@

lab-settings: $(LAB_OVERRIDES)

$(LAB_OVERRIDES): lab/overrides.json
	mkdir -p $(dir $@)
	cp $< $@

lab: $(STAMP) $(LAB_OVERRIDES)
	cd notebooks && ../$(VENV)/bin/jupyter lab 01_change_of_variables.ipynb $(ROOT_ARG) $(LAB_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# tests/test_site.py builds the site (website/build.py, as make site) in its own test
# process while the other runs the notebooks, then opens every page in Chromium.
test: $(STAMP) $(SITE_STAMP) lint
	COURSE_FAST=1 COURSE_DATA_DIR=$(COURSE_DATA_DIR) COURSE_CACHE_DIR=$(CURDIR)/.cache/test OMP_WAIT_POLICY=PASSIVE \
		$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --doctest-modules course_utils tests \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=600 notebooks $(STUDENT_NOTEBOOKS)

# Re-execute every lesson in full mode and keep its outputs (what is committed).
notebooks: $(STAMP)
	for nb in notebooks/[0-9]*.ipynb; do \
		COURSE_DATA_DIR=$(COURSE_DATA_DIR) $(VENV)/bin/jupyter nbconvert --to notebook --execute \
			--inplace --ExecutePreprocessor.timeout=3600 $$nb || exit 1; \
	done

# The student copies of the lessons (solutions become stubs, outputs cleared)
# and the teacher guide's exercise answers, both from the lessons and the registry.
student: $(STAMP)
	$(PY) -m course_utils.student
	$(PY) -m course_utils.exercises --update-guide

# The course as a static website, from the committed notebooks (nothing is executed,
# nothing is downloaded): build/site/html/index.html. website/build.py says how.
site: $(SITE_STAMP)
	$(PY) website/build.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build/site
