# One entry point for setting up, building the data, running and testing. See README "Quick start".
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RAW ?= ../shared/data/redial
DATA_ROOT ?= data
CONFIG ?= config/c2crs/redial.yaml
STAMP := $(VENV)/.installed

# The quick start: C2-CRS through every stage on a budget that learns (about 30 minutes on 2 cores, README):
# 40 + 40 pre-training batches (the BatchNorm heads leave the chance plateau within ~15), 4 rec epochs, four conv
# epochs with the review encoder frozen as well (chosen on validation: the decoder leaves its generic plateau one
# to three epochs in, depending on the seed; the frozen review encoder pays for the fourth epoch), each scored on
# its validation batches by greedy decoding; shortened validation for the pre-training and conv stages; the whole
# test set for recommendation, the benchmark's first 20 test batches (2,560 responses) for the decoder, decoded as
# the chat decodes (block_ngram=3).
QUICK_DIR := C2CRS_quickstart
QUICK := --set coarse.epoch=1 --set coarse.max_batches=40 --set coarse.valid_max_batches=5 \
	--set fine.epoch=1 --set fine.max_batches=40 --set fine.valid_max_batches=5 \
	--set rec.epoch=4 --set conv.epoch=4 --set conv.batch_size=128 --set 'conv_freeze=[kg,history,review]' \
	--set conv.valid_max_batches=10 \
	--set conv.decode_valid=true --set conv.test_max_batches=20 --set block_ngram=3 \
	--set checkpoint_dir=$(QUICK_DIR)
QUICK_RESULTS := $(DATA_ROOT)/save/$(QUICK_DIR)/results.json
CHAT := $(PY) run_crslab.py --config config/c2crs/redial.yaml --data-root $(DATA_ROOT) \
	--set checkpoint_dir=$(QUICK_DIR) --set block_ngram=3 -rs -i

.PHONY: setup data run quickstart test

# The venv is rebuilt only when setup.py or this Makefile changes, so a second `make setup` is a no-op.
$(STAMP): setup.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned to the CPU wheel on disk, so nothing later pulls a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	# CRSLab without its 2021 pins (they do not build on Python 3.11); its real imports come from setup.py
	$(PY) -m pip install -q --no-deps crslab==0.1.2
	$(PY) -c "import crslab_c2crs" && touch $(STAMP)

setup: $(STAMP)

$(DATA_ROOT)/dataset/redial/nltk/.built: | $(STAMP)
	@if [ ! -d "$(RAW)" ]; then \
		echo "Raw ReDial data not found at $(RAW). Place the layout of shared/data/redial there (raw/, derived/,"; \
		echo "crslab_nltk/, kgsf/, conceptnet/, reviews/, movie_meta/) or run: make data RAW=/path/to/redial"; \
		exit 2; fi
	$(PY) -m crslab_c2crs.data build redial --raw $(RAW) --data-root $(DATA_ROOT)

data: $(DATA_ROOT)/dataset/redial/nltk/.built

run: data
	$(PY) run_crslab.py --config $(CONFIG) --data-root $(DATA_ROOT) $(ARGS)

quickstart: data
	$(PY) run_crslab.py --config config/c2crs/redial.yaml --data-root $(DATA_ROOT) -ss $(QUICK) \
		--results $(QUICK_RESULTS) $(ARGS)
	@echo "Per-epoch validation curves of the decoder:  $(PY) -m bench.conv_curves $(QUICK_RESULTS) --out $(DATA_ROOT)/save/$(QUICK_DIR)/curves"
	@echo "Chat with this model:  $(CHAT)"

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)
