"""The build of the tiny raw folder: CRSLab's file layout, markers, side files, atomic replacement, CLI."""
import importlib
import json

import numpy as np
import pytest

from crslab_c2crs.data.__main__ import main
from crslab_c2crs.data.builder import DataBuildError, build_redial
from crslab_c2crs.data.layout import MANIFEST_FILE, redial_dir, redial_kgsf_dir
from crslab_c2crs.data.tokenize import is_movie_token
from tests.data.tiny_raw import SPLITS

CRSLAB_FILES = ["train_data.json", "valid_data.json", "test_data.json", "token2id.json", "entity2id.json",
                "dbpedia_subkg.json", "concept2id.json", "conceptnet_subkg.txt", "movie_ids.json"]


def test_layout_and_markers(tiny_build):
    root, _stats = tiny_build
    folder = redial_dir(root)
    for name in CRSLAB_FILES + ["c2crs_reviews.json", "build_stats.json", MANIFEST_FILE]:
        assert (folder / name).is_file(), name
    assert (folder / ".built").read_text().splitlines()[1] == "0.31"
    assert (redial_kgsf_dir(root) / ".built").read_text().splitlines()[1] == "0.2"
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_split_sizes_and_utterance_format(tiny_build):
    root, stats = tiny_build
    entity2id = json.loads((redial_dir(root) / "entity2id.json").read_text())
    for split, size in SPLITS.items():
        convs = json.loads((redial_dir(root) / f"{split}_data.json").read_text())
        assert len(convs) == size == stats["splits"][split]["conversations"]
        recommender_movies = 0
        for conv in convs:
            for utt_id, utt in enumerate(conv["dialog"]):
                assert list(utt) == ["utt_id", "role", "text", "movies", "entity", "word"]
                assert utt["utt_id"] == utt_id and utt["role"] in ("Seeker", "Recommender")
                assert all(e in entity2id for e in utt["movies"] + utt["entity"])
                recommender_movies += utt["role"] == "Recommender" and bool(utt["movies"])
        assert recommender_movies > 0


def test_mention_side_file_matches_dialogs(tiny_build):
    root, _stats = tiny_build
    folder = redial_dir(root)
    entity2id = json.loads((folder / "entity2id.json").read_text())
    movie2entity = {k: v for k, v in entity2id.items()}
    for split in SPLITS:
        convs = json.loads((folder / f"{split}_data.json").read_text())
        side = json.loads((folder / f"c2crs_mentions_{split}.json").read_text())
        assert side["format_version"] == 1 and side["split"] == split
        for conv in convs:
            spans = side["conversations"][conv["conv_id"]]
            assert len(spans) == len(conv["dialog"])
            for utt, utt_spans in zip(conv["dialog"], spans, strict=True):
                ids = [eid for _s, _e, eid in utt_spans]
                annotated = [movie2entity[m] for m in utt["movies"] + utt["entity"]]
                assert sorted(set(ids)) == sorted(set(annotated))
                for start, end, _eid in utt_spans:
                    assert 0 <= start < end <= len(utt["text"])
                    if is_movie_token(utt["text"][start]):
                        assert end == start + 1


def test_copy_mask_and_word_kg(tiny_build):
    root, _stats = tiny_build
    folder = redial_dir(root)
    mask = np.load(redial_kgsf_dir(root) / "copy_mask.npy")
    token2id = json.loads((folder / "token2id.json").read_text())
    assert mask.dtype == bool and mask.shape == (len(token2id),)
    assert mask[token2id["like"]] and not mask[token2id["__pad__"]]
    concepts = json.loads((folder / "concept2id.json").read_text())
    for line in (folder / "conceptnet_subkg.txt").read_text().splitlines():
        fields = line.strip().split("\t")
        assert fields[1].split("/")[0] in concepts and fields[2].split("/")[0] in concepts


def test_crslab_stock_redial_reads_the_build(tiny_build, crslab_at):
    root, stats = tiny_build
    crslab_at(root)
    redial = importlib.import_module("crslab.data.dataset.redial.redial")
    dataset = redial.ReDialDataset({}, "nltk")
    assert len(dataset.valid_data) == stats["splits"]["valid"]["samples"]
    assert dataset.side_data["entity_kg"]["n_relation"] >= 1
    assert len(dataset.side_data["item_entity_ids"]) >= 50


def test_refuses_existing_build_without_force(tiny_raw_dir, tmp_path):
    build_redial(tiny_raw_dir, tmp_path)
    with pytest.raises(DataBuildError, match="--force"):
        build_redial(tiny_raw_dir, tmp_path)


def test_force_moves_own_build_and_foreign_folder_aside(tiny_raw_dir, tmp_path):
    build_redial(tiny_raw_dir, tmp_path)
    (redial_dir(tmp_path) / "user_notes.txt").write_text("added to our build")
    build_redial(tiny_raw_dir, tmp_path, force=True)
    olds = [p for p in redial_dir(tmp_path).parent.iterdir() if p.name.startswith("nltk.old-")]
    assert len(olds) == 1 and (olds[0] / "user_notes.txt").read_text() == "added to our build"
    assert (redial_dir(tmp_path) / ".built").is_file() and not (redial_dir(tmp_path) / "user_notes.txt").exists()
    foreign = redial_kgsf_dir(tmp_path)
    (foreign / MANIFEST_FILE).unlink()
    (foreign / "user_notes.txt").write_text("mine")
    build_redial(tiny_raw_dir, tmp_path, force=True)
    backups = [p for p in foreign.parent.iterdir() if p.name.startswith("ReDial.bak-")]
    assert len(backups) == 1 and (backups[0] / "user_notes.txt").read_text() == "mine"


def test_failed_build_leaves_no_folder(tiny_raw_dir, tmp_path, monkeypatch):
    def explode(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("crslab_c2crs.data.builder.output.StagedFolder.commit", explode)
    with pytest.raises(RuntimeError):
        build_redial(tiny_raw_dir, tmp_path)
    assert not redial_dir(tmp_path).exists()
    assert not [p for p in redial_dir(tmp_path).parent.iterdir()]


def test_cli_builds_and_reports(tiny_raw_dir, tmp_path, capsys):
    assert main(["build", "redial", "--raw", str(tiny_raw_dir), "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "conversations" in out and "build_stats.json" in out
    saved = json.loads((redial_dir(tmp_path) / "build_stats.json").read_text())
    assert saved["splits"]["train"]["conversations"] == SPLITS["train"]


def test_cli_prints_data_errors_without_traceback(tmp_path, capsys):
    assert main(["build", "redial", "--raw", str(tmp_path / "nowhere"), "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: raw data folder not found") and "Traceback" not in err
