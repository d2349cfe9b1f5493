"""Every input fault stops the build with a one-line DataBuildError naming the file and record (or line), leaving no
output."""
import json
import pickle
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from crslab_c2crs.data.builder import DataBuildError, build_redial
from crslab_c2crs.data.layout import redial_dir, redial_kgsf_dir


def _edit_json(path: Path, edit: Callable) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _edit_line(path: Path, lineno: int, edit: Callable[[dict], None]) -> None:
    lines = path.read_text().splitlines()
    record = json.loads(lines[lineno - 1])
    edit(record)
    lines[lineno - 1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")


def _replace_line(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n")


def _insert_bad_byte(path: Path, lineno: int) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[lineno - 1] = lines[lineno - 1][:-3] + b"\xff" + lines[lineno - 1][-3:]
    path.write_bytes(b"\n".join(lines))


def _drop_csv_line(path: Path, lineno: int) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:lineno - 1] + lines[lineno:]) + "\n")


def _wrap_json_in_list(path: Path) -> None:
    path.write_text(json.dumps([json.loads(path.read_text())]))


class Evil:
    pass


def _set_message_text(record, text):
    record["messages"][1]["text"] = text


CORRUPTIONS = {
    "missing input file": (lambda r: (r / "kgsf" / "mask4key.npy").unlink(), r"missing input file: .*mask4key\.npy"),
    "malformed JSON line": (lambda r: _replace_line(r / "raw" / "valid_data.jsonl", 3, '{"conversationId": '),
                            r"valid_data\.jsonl, line 3: malformed JSON line"),
    "JSON line not an object": (lambda r: _replace_line(r / "raw" / "test_data.jsonl", 2, "[1, 2]"),
                                r"test_data\.jsonl, line 2: expected a JSON object"),
    "malformed JSON document": (lambda r: (r / "crslab_nltk" / "entity2id.json").write_text('{"a": 1,\n "b"'),
                                r"entity2id\.json: malformed JSON at line 2"),
    "unknown movie id": (lambda r: _edit_line(r / "raw" / "test_data.jsonl", 4,
                                              lambda rec: _set_message_text(rec, "see @999999 !")),
                         r"test_data\.jsonl, line 4 \(conversation 3003\), message 1: unknown movie id @999999"),
    "movie entity id out of range": (
        lambda r: _edit_json(r / "derived" / "redial_context_movie_id2crslab_entityId.json",
                             lambda d: d.update({"100005": 99999})),
        r"redial_context_movie_id2crslab_entityId\.json, movie 100005: entity id 99999 out of range"),
    "movie entity not an item": (
        lambda r: _edit_json(r / "derived" / "redial_context_movie_id2crslab_entityId.json",
                             lambda d: d.update({"100005": 61})),
        r"movie 100005: entity id 61 is not in movie_ids\.json"),
    "KG tail out of range": (lambda r: _edit_json(r / "crslab_nltk" / "dbpedia_subkg.json",
                                                  lambda d: d["1"].append([69, 4242])),
                             r"dbpedia_subkg\.json, head 1, edge \[69, 4242\]: entity id 4242 out of range"),
    "movie_ids out of range": (lambda r: _edit_json(r / "crslab_nltk" / "movie_ids.json", lambda d: d.append(0)),
                               r"movie_ids\.json, item 60: entity id 0 out of range"),
    "entity id not positive": (lambda r: _edit_json(r / "crslab_nltk" / "entity2id.json",
                                                    lambda d: d.update({"<x>": 0})),
                               r"entity2id\.json, entity '<x>': id 0 must be a positive int"),
    "special token ids": (lambda r: _edit_json(r / "crslab_nltk" / "token2id.json",
                                               lambda d: d.update({"__unk__": 9, "I": 3})),
                          r"token2id\.json: special token '__unk__' must have id 3"),
    "unknown sender": (lambda r: _edit_line(r / "raw" / "valid_data.jsonl", 2,
                                            lambda rec: rec["messages"][0].update({"senderWorkerId": 77})),
                       r"valid_data\.jsonl, line 2 \(conversation 2001\), message 0: senderWorkerId 77"),
    "message without text": (lambda r: _edit_line(r / "raw" / "valid_data.jsonl", 1,
                                                  lambda rec: rec["messages"][2].pop("text")),
                             r"line 1 \(conversation 2000\), message 2: a message needs a 'text' string"),
    "conversation without messages": (lambda r: _edit_line(r / "raw" / "valid_data.jsonl", 1,
                                                           lambda rec: rec.pop("messages")),
                                      r"valid_data\.jsonl, line 1 .*needs 'conversationId' and a 'messages'"),
    "duplicate conversation": (lambda r: _edit_line(r / "raw" / "valid_data.jsonl", 2,
                                                    lambda rec: rec.update({"conversationId": "2000"})),
                               r"valid_data\.jsonl, line 2: duplicate conversationId 2000"),
    "copy mask length": (lambda r: np.save(r / "kgsf" / "mask4movie.npy", np.zeros(3)),
                         r"mask4movie\.npy: copy mask has 3 entries"),
    "movie meta malformed elsewhere": (lambda r: (r / "movie_meta" / "cfcrs_id2info.json").write_text('{"1": x}'),
                                       r"cfcrs_id2info\.json: malformed JSON at line 1"),
    "review record": (lambda r: _edit_line(r / "reviews" / "aclimdb_redial_reviews.jsonl", 2,
                                           lambda rec: rec.pop("rating")),
                      r"aclimdb_redial_reviews\.jsonl, line 2: a review needs"),
    "pickle with a class": (lambda r: (r / "reviews" / "revcore_movie2tokenreview_helpful.pkl").write_bytes(
        pickle.dumps({"1": Evil()})), r"revcore_movie2tokenreview_helpful\.pkl: refusing to unpickle .*Evil"),
    "random bytes as a .npy file": (lambda r: (r / "kgsf" / "mask4key.npy").write_bytes(bytes(range(256)) * 4),
                                    r"mask4key\.npy: not a valid \.npy file"),
    "pickled objects in a .npy file": (lambda r: np.save(r / "kgsf" / "mask4key.npy",
                                                         np.array([{"a": 1}], dtype=object), allow_pickle=True),
                                       r"mask4key\.npy: not a valid \.npy array of numbers \(damaged, or an array "
                                       r"of Python objects, which is never loaded\)"),
    "non-UTF-8 byte in a JSONL file": (lambda r: _insert_bad_byte(r / "raw" / "valid_data.jsonl", 3),
                                       r"valid_data\.jsonl, line 3: not UTF-8 text \(byte 0xff\)"),
    "non-UTF-8 byte in a JSON file": (lambda r: _insert_bad_byte(r / "crslab_nltk" / "entity2id.json", 1),
                                      r"entity2id\.json, line 1: not UTF-8 text"),
    "non-UTF-8 byte in the stopwords": (lambda r: _insert_bad_byte(r / "kgsf" / "stopwords.txt", 4),
                                        r"stopwords\.txt, line 4: not UTF-8 text"),
    "non-UTF-8 byte in ConceptNet": (
        lambda r: _insert_bad_byte(r / "conceptnet" / "shupeili_conceptnet_one_hop_edges.txt", 2),
        r"shupeili_conceptnet_one_hop_edges\.txt, line 2: not UTF-8 text"),
    "non-UTF-8 byte in the movie list": (lambda r: _insert_bad_byte(r / "raw" / "movies_with_mentions.csv", 5),
                                         r"movies_with_mentions\.csv, line 5: not UTF-8 text"),
    "JSON object where an array is expected": (lambda r: _wrap_json_in_list(r / "crslab_nltk" / "entity2id.json"),
                                               r"entity2id\.json: expected a JSON object, got list"),
    "JSON array where an object is expected": (
        lambda r: _wrap_json_in_list(r / "derived" / "redial_context_movie_id2crslab_entityId.json"),
        r"redial_context_movie_id2crslab_entityId\.json: expected a JSON object, got list"),
    "empty .npy file": (lambda r: (r / "kgsf" / "mask4key.npy").write_bytes(b""),
                        r"mask4key\.npy: the file is empty"),
    "empty .npy array": (lambda r: np.save(r / "kgsf" / "mask4key.npy", np.zeros(0)),
                         r"mask4key\.npy: expected a non-empty 1-D mask"),
    "empty movie list": (lambda r: (r / "raw" / "movies_with_mentions.csv").write_text(""),
                         r"movies_with_mentions\.csv: the file is empty"),
    "partial movie list": (lambda r: _drop_csv_line(r / "raw" / "movies_with_mentions.csv", 9),
                           r"movies_with_mentions\.csv: 1 movies of the movie -> entity map have no row "
                           r"\(first: 100007\)"),
    "movie list without its header": (lambda r: _drop_csv_line(r / "raw" / "movies_with_mentions.csv", 1),
                                      r"movies_with_mentions\.csv, line 1: the header must name the columns"),
    "relation id as text": (lambda r: _edit_json(r / "crslab_nltk" / "dbpedia_subkg.json",
                                                 lambda d: d["1"].append(["69", 2])),
                            r"dbpedia_subkg\.json, head 1, edge \['69', 2\]: relation '69' must be a non-negative"),
    "negative relation id": (lambda r: _edit_json(r / "crslab_nltk" / "dbpedia_subkg.json",
                                                  lambda d: d["1"].append([-1, 2])),
                             r"relation -1 must be a non-negative integer"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupted_input_stops_the_build(name, tiny_raw_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw_dir, raw)
    corrupt, message = CORRUPTIONS[name]
    corrupt(raw)
    with pytest.raises(DataBuildError, match=message) as err:
        build_redial(raw, tmp_path / "root")
    assert "\n" not in str(err.value) and len(str(err.value)) < 400  # one line, not a dump of the input
    assert "allow_pickle" not in str(err.value) and "pickle.load" not in str(err.value)
    assert not redial_dir(tmp_path / "root").exists()
    assert not redial_kgsf_dir(tmp_path / "root").exists()


def test_missing_raw_folder(tmp_path):
    with pytest.raises(DataBuildError, match="raw data folder not found"):
        build_redial(tmp_path / "nowhere", tmp_path / "root")
