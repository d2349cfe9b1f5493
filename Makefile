# One entry point for setting up, building the data, running and testing. See README "Quick start".
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RAW ?= ../shared/data/redial
DATA_ROOT ?= data
CONFIG ?= config/c2crs/redial.yaml
STAMP := $(VENV)/.installed

# The quick start: C2-CRS through its stages on a budget that learns (about 30 minutes on 2 cores, README): the
# config's pre-training (one coarse epoch, chosen on validation; docs/results.md), 4 rec epochs, four conv
# epochs with the review encoder frozen as well (chosen on validation: the decoder leaves its generic plateau one
# to three epochs in, depending on the seed; the frozen review encoder pays for the fourth epoch), each scored on
# its validation batches by greedy decoding; shortened validation for the pre-training and conv stages; the whole
# test set for recommendation, the benchmark's first 20 test batches (2,560 responses) for the decoder, decoded as
# the chat decodes (block_ngram=3).
QUICK_DIR := C2CRS_quickstart
QUICK := --set coarse.valid_max_batches=5 \
	--set rec.epoch=4 --set conv.epoch=4 --set conv.batch_size=128 --set 'conv_freeze=[kg,history,review]' \
	--set conv.valid_max_batches=10 \
	--set conv.decode_valid=true --set conv.test_max_batches=20 --set block_ngram=3 \
	--set checkpoint_dir=$(QUICK_DIR)
QUICK_RESULTS := $(DATA_ROOT)/save/$(QUICK_DIR)/results.json
CHAT := $(PY) run_crslab.py --config config/c2crs/redial.yaml --data-root $(DATA_ROOT) \
	--set checkpoint_dir=$(QUICK_DIR) --set block_ngram=3 -rs -i
# KGSF and KBRD beside the quick start, for the web chat's side-by-side page (README): KGSF's MIM pre-training for one
# epoch, the quick start's 4 rec epochs (KBRD's in batches of 256, as the benchmark's: its config's 4,096 leave it 40
# updates), and one conv epoch (their CRSLab decoders train at 19 and 26 samples/s on 2
# cores against C2-CRS's 58 with its encoders fixed: one epoch is 15 and 12 minutes); conv batches of 128, so the
# test cap holds the quick start's 2,560 responses.
SIDE_QUICK := --set rec.epoch=4 --set conv.epoch=1 --set conv.batch_size=128 --set conv.valid_max_batches=10 \
	--set conv.test_max_batches=20
KGSF_QUICK := $(SIDE_QUICK) --set pretrain.epoch=1 --set checkpoint_dir=KGSF_quickstart
KBRD_QUICK := $(SIDE_QUICK) --set rec.batch_size=256 --set checkpoint_dir=KBRD_quickstart
WEB := $(PY) -m crslab_c2crs.interactive.web --data-root $(DATA_ROOT) \
	--model config/c2crs/redial.yaml checkpoint_dir=$(QUICK_DIR) block_ngram=3 \
	--model config/kgsf/redial.yaml checkpoint_dir=KGSF_quickstart \
	--model config/kbrd/redial.yaml checkpoint_dir=KBRD_quickstart

.PHONY: setup data run quickstart web test

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

# The three quick-start models side by side in the browser; trains whichever of them is not saved yet (C2-CRS: the
# quick start, ~35 min; KGSF ~26 min; KBRD ~17 min), then serves http://127.0.0.1:8000/.
$(DATA_ROOT)/save/$(QUICK_DIR)/C2CRS.pth: | data
	$(MAKE) quickstart

$(DATA_ROOT)/save/KGSF_quickstart/KGSF.pth: | data
	$(PY) run_crslab.py --config config/kgsf/redial.yaml --data-root $(DATA_ROOT) -ss $(KGSF_QUICK) \
		--results $(DATA_ROOT)/save/KGSF_quickstart/results.json

$(DATA_ROOT)/save/KBRD_quickstart/KBRD.pth: | data
	$(PY) run_crslab.py --config config/kbrd/redial.yaml --data-root $(DATA_ROOT) -ss $(KBRD_QUICK) \
		--results $(DATA_ROOT)/save/KBRD_quickstart/results.json

web: $(DATA_ROOT)/save/$(QUICK_DIR)/C2CRS.pth $(DATA_ROOT)/save/KGSF_quickstart/KGSF.pth \
		$(DATA_ROOT)/save/KBRD_quickstart/KBRD.pth
	$(WEB) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)
