"""``python -m crslab_c2crs.data build tgredial``: movie table, review corpus, stand-in KGSF copy mask, errors."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from crslab_c2crs.data.__main__ import main as data_main
from crslab_c2crs.data.builder.errors import DataBuildError
from crslab_c2crs.data.builder.tgredial import build_tgredial, movie_table
from crslab_c2crs.data.layout import REVIEWS_FILE, TGREDIAL_MOVIES_FILE, tgredial_dir, tgredial_kgsf_dir
from crslab_c2crs.data.tgredial import CRSLAB_FILES
from tests.tgredial.tiny_tgredial import write_tiny_tgredial


def _copy(tg_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(tg_root, root)
    return root


def _message(text, movies):
    return {"text": text.split(), "movie": movies}


def test_movie_table_titles_years_and_order():
    entity2id = {"边界线（2014年日剧）": 1, "26615319": 2, "教父": 3, "99": 4, "周星驰": 5}
    dialogs = {"train": [{"conv_id": "1", "messages": [
                   _message("看 《 星空 下 的 猫 》 和 《 教父 》", ["26615319", "教父"]),
                   _message("《 边界 线 》", ["边界线（2014年日剧）"])]}],
               "test": [{"conv_id": "2", "messages": [_message("《 星空下 的猫 》 《 教父 》", ["26615319", "教父"]),
                                                       _message("《 星星 猫 》", ["26615319"])]}]}
    paths = {split: Path(f"{split}_data.json") for split in dialogs}
    records = movie_table(dialogs, paths, entity2id, [1, 2, 3, 4])
    by_id = {record["entity_id"]: record for record in records}
    assert by_id[1]["title"] == "边界线" and by_id[1]["year"] == 2014
    # a Douban id takes its most written title; other spellings become aliases
    assert by_id[2]["title"] == "星空下的猫" and by_id[2]["aliases"] == ["星星猫"] and by_id[2]["year"] is None
    assert 4 not in by_id  # never written anywhere: no title
    # training mentions first (test dialogs give titles, not counts)
    assert [record["entity_id"] for record in records] == [1, 2, 3]
    assert [record["mentions"] for record in records] == [1, 1, 1]


def test_movie_table_names_the_file_of_a_malformed_conversation():
    with pytest.raises(DataBuildError, match=r"train_data.json: conversation 7: a message needs a 'text'"):
        movie_table({"train": [{"conv_id": "7", "messages": [{"text": "not a list", "movie": []}]}]},
                    {"train": Path("train_data.json")}, {}, [])


def test_build_outputs(tg_root):
    dpath = tgredial_dir(tg_root)
    entity2id = json.loads((dpath / "entity2id.json").read_text(encoding="utf-8"))
    movies = json.loads((dpath / TGREDIAL_MOVIES_FILE).read_text(encoding="utf-8"))["movies"]
    assert movies[0]["mentions"] == 2
    assert {"entity_id": entity2id["26615319"], "title": "星空下的猫", "year": None, "mentions": 2,
            "aliases": []} in movies
    corpus = json.loads((dpath / REVIEWS_FILE).read_text(encoding="utf-8"))
    reviews = corpus["entities"]
    token2id = json.loads((dpath / "token2id.json").read_text(encoding="utf-8"))
    ind2tok = {index: token for token, index in token2id.items()}
    farewell = ["".join(ind2tok[i] for i in sentence["ids"]) for sentence in reviews[str(entity2id["霸王别姬"])]]
    # rating 10 before rating 6, reading order within a review; every word is known to the vocabulary
    assert farewell == ["张国荣的演技非常好，故事很感人。", "是一部经典的电影！", "电影有点长，但是音乐很好听。"]
    # a review naming the movie by its title reaches the movie known by its Douban id
    assert str(entity2id["26615319"]) in reviews
    assert set(reviews) <= {str(record["entity_id"]) for record in movies}
    mask = np.load(tgredial_kgsf_dir(tg_root) / "copy_mask.npy")
    assert mask.dtype == bool and mask.shape == (len(token2id),)
    assert mask[token2id["喜剧"]] and mask[token2id["周星驰"]] and not mask[token2id["__end__"]]
    assert (tgredial_kgsf_dir(tg_root) / ".built").read_text().splitlines()[1] == "0.2"


def test_rebuild_needs_force_and_never_replaces_a_foreign_mask(tg_root, tmp_path):
    root = _copy(tg_root, tmp_path)
    with pytest.raises(DataBuildError, match="pass --force"):
        build_tgredial(root, root / "reviews.jsonl")
    np.save(tgredial_kgsf_dir(root) / "copy_mask.npy", np.zeros(3, dtype=bool))  # "CRSLab's own" mask: not ours
    (tgredial_kgsf_dir(root) / "c2crs_build_manifest.json").unlink()
    mask_report = build_tgredial(root, root / "reviews.jsonl", force=True)["kgsf_copy_mask"]
    assert mask_report.startswith("kept the existing") and "not built by this command" in mask_report
    assert np.load(tgredial_kgsf_dir(root) / "copy_mask.npy").shape == (3,)
    # without --reviews only the movie table is rebuilt (KGSF and KBRD need no reviews)
    (tgredial_dir(root) / REVIEWS_FILE).unlink()
    build_tgredial(root, None, force=True)
    assert not (tgredial_dir(root) / REVIEWS_FILE).exists()


@pytest.mark.parametrize("line, message", [
    ('{"movie": "教父"}', "line 1: a review needs a 'movie' and a string 'text'"),
    ('{"movie": "教父", "text": "好", "rating": "10"}', "line 1: 'rating' must be a number"),
    ('[1, 2]', "line 1: expected a JSON object"),
    ('{"movie": "教父", ', "line 1: malformed JSON line"),
])
def test_a_bad_review_line_names_file_and_line(tg_root, tmp_path, line, message):
    root = _copy(tg_root, tmp_path)
    (root / "bad.jsonl").write_text(line + "\n", encoding="utf-8")
    with pytest.raises(DataBuildError, match=message) as err:
        build_tgredial(root, root / "bad.jsonl", force=True)
    assert str(root / "bad.jsonl") in str(err.value)


def test_cli_names_every_missing_file_and_exits_2(tmp_path, capsys):
    assert data_main(["build", "tgredial", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    dpath = tmp_path / "dataset" / "tgredial" / "pkuseg"
    assert all(f"{dpath / name}:" in err for name in CRSLAB_FILES)
    assert "Traceback" not in err
    assert not (tmp_path / "dataset").exists() and not (tmp_path / "model").exists()


def test_cli_builds_and_reports(tmp_path, capsys):
    root = write_tiny_tgredial(tmp_path / "root")
    assert data_main(["build", "tgredial", "--data-root", str(root), "--reviews", str(root / "reviews.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "movies_with_title:" in out and "reviews_of_unknown_movies: 1" in out
    assert data_main(["build", "tgredial", "--data-root", str(root), "--reviews", str(root / "nope.jsonl"),
                      "--force"]) == 2
    assert "review file" in capsys.readouterr().err
