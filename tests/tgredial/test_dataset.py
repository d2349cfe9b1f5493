"""TGReDial / TGReDialReview: CRSLab's samples plus the C2-CRS fields, and one error naming every missing file."""
import importlib

import numpy as np
import pytest

from crslab_c2crs.data.layout import REVIEWS_FILE, tgredial_kgsf_dir
from crslab_c2crs.data.tgredial import CRSLAB_FILES, TGReDialDataset, TGReDialReviewDataset
from crslab_c2crs.errors import MissingDataError
from tests.tgredial.tiny_tgredial import SHARED_TGREDIAL, write_tiny_tgredial

OPT = {"context_truncate": 30, "review_entity_limit": 2, "nb_review": 2, "info_truncate": 6}


@pytest.fixture
def review_dataset(tg_root, tg_crslab_at):
    tg_crslab_at(tg_root)
    return TGReDialReviewDataset(dict(OPT), "pkuseg")


def _decode(dataset, ids):
    return [dataset.ind2tok[i] for i in ids]


def test_samples_are_crslabs_with_c2crs_fields(review_dataset, tg_root):
    stock = importlib.import_module("crslab.data.dataset.tgredial.tgredial").TGReDialDataset({}, "pkuseg")
    for ours, theirs in ((review_dataset.train_data, stock.train_data), (review_dataset.test_data, stock.test_data)):
        assert len(ours) == len(theirs)
        for sample, reference in zip(ours, theirs):
            assert {key: sample[key] for key in reference} == reference
    end = review_dataset.special_token_idx["end"]
    for sample in review_dataset.train_data + review_dataset.valid_data + review_dataset.test_data:
        assert sample["context_seq"][-1] == end and len(sample["context_seq"]) <= OPT["context_truncate"]
        for start, stop, entity in sample["context_mentions"]:
            assert 0 <= start < stop <= len(sample["context_seq"])
            name = review_dataset.id2entity[entity]
            written = "".join(_decode(review_dataset, sample["context_seq"][start:stop]))
            # movies known by a Douban id are written with their title; every other name is spelled out
            assert written == name or name.isdigit()
        assert len(sample["review_sentences"]) <= OPT["review_entity_limit"] * OPT["nb_review"]
        for entity, ids in sample["review_sentences"]:
            assert entity in sample["context_entities"]
            assert 0 < len(ids) <= OPT["info_truncate"]


def test_a_conversation_in_detail(review_dataset):
    entity2id = review_dataset.entity2id
    # train conversation 3: 宫崎骏 ... 《千与千寻》 ... 《星空下的猫》 (a movie known only by its Douban id)
    samples = [s for s in review_dataset.train_data if s["items"] == [entity2id["26615319"]]]
    sample = samples[0]
    mentioned = [(_decode(review_dataset, sample["context_seq"][a:b]), e) for a, b, e in sample["context_mentions"]]
    assert (["千", "与", "千", "寻"], entity2id["千与千寻"]) in mentioned
    assert (["宫崎骏"], entity2id["宫崎骏"]) in mentioned
    # 千与千寻 is the only context movie with review sentences
    assert [entity for entity, _ in sample["review_sentences"]] == [entity2id["千与千寻"]]
    later = next(s for s in review_dataset.train_data if entity2id["26615319"] in s["context_entities"])
    assert entity2id["26615319"] in {e for _, _, e in later["context_mentions"]}


def test_side_data(review_dataset):
    side = review_dataset.side_data
    vocab_size = len(review_dataset.tok2ind)
    assert len(side["token_freq"]) == vocab_size
    assert side["token_freq"][review_dataset.tok2ind["推荐"]] > 0
    assert all(side["token_freq"][idx] == 0 for idx in (0, 1, 2, 3))  # specials are not words
    assert side["copy_mask"].shape == (vocab_size,) and side["copy_mask"].dtype == bool
    assert side["copy_mask"][review_dataset.tok2ind["喜剧"]] and not side["copy_mask"][0]
    assert set(side["entity_reviews"]) <= set(side["item_entity_ids"])
    assert side["review_corpus_version"] == 1


@pytest.mark.skipif(not SHARED_TGREDIAL.is_dir(), reason=f"real TG-ReDial vocabularies not found at {SHARED_TGREDIAL}")
def test_the_synthetic_vocabularies_give_the_same_samples_in_other_ids(tmp_path, tg_root, tg_crslab_at):
    """The fixture falls back to small vocabularies without shared/data; both must load alike."""
    from crslab_c2crs.data.builder.tgredial import build_tgredial

    root = write_tiny_tgredial(tmp_path / "synthetic", vocab_dir=None)
    build_tgredial(root, root / "reviews.jsonl")
    counts = []
    for data_root in (tg_root, root):
        tg_crslab_at(data_root)
        dataset = TGReDialReviewDataset(dict(OPT), "pkuseg")
        counts.append([(len(s["context_mentions"]), len(s["review_sentences"])) for s in dataset.train_data])
    assert counts[0] == counts[1]


def test_every_missing_file_is_named_with_its_crslab_path(tmp_path, tg_crslab_at):
    dpath = tmp_path / "dataset" / "tgredial" / "pkuseg"
    tg_crslab_at(tmp_path)
    with pytest.raises(MissingDataError) as err:
        TGReDialReviewDataset(dict(OPT), "pkuseg")
    lines = str(err.value).splitlines()
    for name in list(CRSLAB_FILES) + [REVIEWS_FILE]:
        assert sum(line.strip().startswith(f"{dpath / name}:") for line in lines) == 1, name
    assert any(line.strip().startswith(str(tgredial_kgsf_dir(tmp_path) / "copy_mask.npy")) for line in lines)
    assert "tgredial_pkuseg.zip" in str(err.value)
    assert f"python -m crslab_c2crs.data build tgredial --data-root {tmp_path}" in str(err.value)
    assert not (tmp_path / "dataset").exists()


def test_kgsf_and_kbrd_dataset_needs_only_crslabs_files(tmp_path, tg_crslab_at):
    root = write_tiny_tgredial(tmp_path / "root")
    tg_crslab_at(root)
    dataset = TGReDialDataset({}, "pkuseg")  # no side files, no copy mask
    assert dataset.train_data and "context_seq" not in dataset.train_data[0]
    (root / "dataset" / "tgredial" / "pkuseg" / "hownet.txt").unlink()
    with pytest.raises(MissingDataError, match=r"1 file\(s\) missing") as err:
        TGReDialDataset({}, "pkuseg")
    assert "hownet.txt: HowNet word graph" in str(err.value)


def test_a_copy_mask_of_another_vocabulary_is_refused(tmp_path, tg_crslab_at):
    from crslab_c2crs.data.builder.tgredial import build_tgredial

    root = write_tiny_tgredial(tmp_path / "root")
    build_tgredial(root, root / "reviews.jsonl")
    np.save(tgredial_kgsf_dir(root) / "copy_mask.npy", np.ones(5, dtype=bool))
    tg_crslab_at(root)
    with pytest.raises(MissingDataError, match="has shape"):
        TGReDialReviewDataset(dict(OPT), "pkuseg")
