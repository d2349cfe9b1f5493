"""The rec target protocol (``rec_targets``): parsing, the target turns, and every model's loader listing the same
evaluated entries under each setting on the tiny data."""
import importlib

import pytest

import crslab_c2crs  # noqa: F401  (registers the plugin's loaders)
from crslab.data import dataloader_register_table
from crslab_c2crs.data.batching import BatchPlan
from crslab_c2crs.data.dataset import ReDialReviewDataset
from crslab_c2crs.data.targets import RecTargets, is_target_turn, rec_entries
from crslab_c2crs.errors import ConfigError

MODELS = ("C2CRS", "KGSF", "KBRD", "Popularity", "RepeatContext")
# tests/data/tiny_raw.py: each of the 8 test conversations has a Recommender turn naming one movie, one naming two,
# and a Seeker turn naming the first movie again ("I love @a"); two of the Recommender turns' 24 movies have no KG
# entity (unlinked movies are no targets, as in CRSLab), and the opening Seeker turn is never a sample
TEST_TARGETS = {"recommender": 24 - 2, "all": 24 - 2 + 8}


def test_the_key_reads_a_protocol_or_a_mapping_per_part():
    assert RecTargets.from_opt({}) == RecTargets("recommender", "recommender")
    assert RecTargets.from_opt({"rec_targets": None}) == RecTargets()
    assert RecTargets.from_opt({"rec_targets": "all"}) == RecTargets("all", "all")
    targets = RecTargets.from_opt({"rec_targets": {"eval": "all"}})
    assert (targets.for_split("train"), targets.for_split("valid"), targets.for_split("test")) == \
        ("recommender", "all", "all")
    assert targets.describe() == "train=recommender, eval=all"


@pytest.mark.parametrize("value, named", [("seeker", "rec_targets: unknown protocol 'seeker'"),
                                          ({"test": "all"}, "rec_targets.test: unknown part"),
                                          ({"eval": "everything"}, "rec_targets.eval: unknown protocol"),
                                          (["all"], "rec_targets: ['all'] is not a protocol")])
def test_bad_values_are_named(value, named):
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        RecTargets.from_opt({"rec_targets": value}, "x.yaml")


def test_target_turns_by_protocol():
    seeker = {"role": "Seeker", "items": [7]}
    recommender = {"role": "Recommender", "items": [5, 6]}
    silent = {"role": "Recommender", "items": []}
    assert [is_target_turn(s, "recommender") for s in (seeker, recommender, silent)] == [False, True, False]
    assert [is_target_turn(s, "all") for s in (seeker, recommender, silent)] == [True, True, False]
    assert rec_entries([seeker, recommender, silent], "all") == [(seeker, 7), (recommender, 5), (recommender, 6)]
    with pytest.raises(ValueError, match="protocol"):
        is_target_turn(seeker, "Seeker")


@pytest.fixture
def datasets(tiny_build, crslab_at):
    """The tiny data as C2-CRS reads it (ReDialReview) and as the other models do (CRSLab's ReDial)."""
    root, _stats = tiny_build
    crslab_at(root)
    stock = importlib.import_module("crslab.data.dataset.redial.redial").ReDialDataset({}, "nltk")
    return {"C2CRS": ReDialReviewDataset({}, "nltk"), "other": stock}


def _test_entries(model, dataset, opt):
    """(context entities, target movie) of every entry of ``model``'s test rec pass."""
    loader = dataloader_register_table[model](opt, dataset.test_data, dataset.vocab)
    loader.batch_plan = BatchPlan.from_opt(opt, "test")
    entries = []
    for entry in loader.rec_process_fn():
        sample = entry.get("sample", entry)
        entries.append((tuple(sample["context_entities"]), entry["item"]))
    return entries


@pytest.mark.parametrize("protocol", ["recommender", "all"])
def test_every_model_evaluates_the_same_entries(datasets, protocol):
    opt = {"rec_targets": {"train": "recommender", "eval": protocol}}
    listed = {model: _test_entries(model, datasets["C2CRS" if model == "C2CRS" else "other"], opt)
              for model in MODELS}
    assert len(listed["C2CRS"]) == TEST_TARGETS[protocol]
    assert all(entries == listed["C2CRS"] for entries in listed.values())


def test_the_training_split_follows_its_own_part(datasets):
    dataset = datasets["other"]
    opt = {"rec_targets": {"train": "all", "eval": "recommender"}}
    loader = dataloader_register_table["KBRD"](opt, dataset.train_data, dataset.vocab)
    loader.batch_plan = BatchPlan.from_opt(opt, "train")
    assert len(loader.rec_process_fn()) == len(rec_entries(dataset.train_data, "all")) > \
        len(rec_entries(dataset.train_data, "recommender"))
