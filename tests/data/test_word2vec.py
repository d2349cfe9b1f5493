"""The builder's word2vec step: CRSLab's ``word2vec_redial.npy`` from the training dialogs, deterministic, loaded
by the ``embedding`` config key, and a clear error for a build made without it."""
import importlib
import json
import subprocess
import sys

import numpy as np
import pytest

from crslab_c2crs.data.builder.word2vec import (
    WORD2VEC_DIM,
    WORD2VEC_FILE,
    check_word_vectors,
    dialog_sentences,
    train_word_vectors,
)
from crslab_c2crs.data.layout import redial_dir
from crslab_c2crs.errors import MissingDataError

SENTENCES = [["I", "loved", "@1", "and", "@2"], ["try", "@2", "it", "is", "funny"], ["I", "loved", "it"]] * 20


def test_the_build_writes_one_vector_per_token_trained_on_train_dialogs(tiny_build):
    root, stats = tiny_build
    folder = redial_dir(root)
    vectors = np.load(folder / WORD2VEC_FILE)
    token2id = json.loads((folder / "token2id.json").read_text())
    assert vectors.shape == (len(token2id), WORD2VEC_DIM) and vectors.dtype == np.float32
    train_words = {token for sentence in dialog_sentences(json.loads((folder / "train_data.json").read_text()))
                   for token in sentence}
    for token, index in token2id.items():
        # special tokens and words only the validation/test dialogs use get zero rows (no test text leaks in)
        assert bool(np.any(vectors[index])) == (token in train_words), token
    assert stats["word2vec"]["tokens_with_vectors"] == len(train_words & set(token2id))


def _vectors_in_a_fresh_process(hash_seed: str) -> bytes:
    code = ("import sys, json; from crslab_c2crs.data.builder.word2vec import train_word_vectors; "
            "s, t = json.loads(sys.argv[1]); sys.stdout.buffer.write(train_word_vectors(s, t).tobytes())")
    token2id = {token: index for index, token in enumerate(sorted({t for s in SENTENCES for t in s}) + ["unseen"])}
    return subprocess.run([sys.executable, "-c", code, json.dumps([SENTENCES, token2id])], capture_output=True,
                          check=True, env={"PYTHONHASHSEED": hash_seed, "PATH": ""}).stdout


def test_vectors_are_equal_across_processes_and_hash_seeds():
    assert _vectors_in_a_fresh_process("1") == _vectors_in_a_fresh_process("2")


def test_tokens_the_corpus_never_uses_get_zero_rows():
    vectors = train_word_vectors(SENTENCES, {"__pad__": 0, "loved": 1, "unseen": 2}, dim=8)
    assert vectors.shape == (3, 8)
    assert not vectors[0].any() and vectors[1].any() and not vectors[2].any()


def test_the_embedding_key_loads_the_vectors_into_side_data(tiny_build, crslab_at):
    root, _stats = tiny_build
    crslab_at(root)
    dataset = importlib.import_module("crslab.data.dataset.redial.redial").ReDialDataset(
        {"embedding": WORD2VEC_FILE}, "nltk")
    np.testing.assert_array_equal(dataset.side_data["embedding"], np.load(redial_dir(root) / WORD2VEC_FILE))


def test_a_build_without_vectors_is_a_clear_error(tmp_path):
    folder = tmp_path / "dataset" / "redial" / "nltk"
    folder.mkdir(parents=True)
    check_word_vectors(folder, WORD2VEC_FILE)  # not built: CRSLab's own check names the build command
    (folder / ".built").write_text("now\n0.31")
    with pytest.raises(MissingDataError, match=r"word2vec_redial\.npy does not exist.*--force.*embedding=null"):
        check_word_vectors(folder, WORD2VEC_FILE)
