"""bench.quickstart on a hand-made log and results file: wall time, peak memory, stages, test metrics and the
README sentence; a log without /usr/bin/time's lines is one error line."""
import json

import pytest

import bench.quickstart as quickstart

LOG = """2026-12-05 | INFO | [coarse: 10240 training samples in 139.3s (73.5 samples/s), 142.9s in all]
2026-12-05 | INFO | [rec: 41664 training samples in 52.4s (795.8 samples/s), 56.1s in all]
\tElapsed (wall clock) time (h:mm:ss or m:ss): 24:58.31
\tMaximum resident set size (kbytes): 7759872
"""
RESULTS = {"test": {"hit@1": 0.03551, "hit@10": 0.15864, "hit@50": 0.3152, "bleu@1": 0.10853, "dist_ratio@2": 0.0629,
                    "dist@1": 0.5, "dist_ratio@1": 0.05}}


def test_the_record_and_its_sentence(tmp_path):
    (tmp_path / "log").write_text(LOG)
    (tmp_path / "results.json").write_text(json.dumps(RESULTS))
    out = tmp_path / "record.json"
    assert quickstart.main(["record", "--log", str(tmp_path / "log"), "--results", str(tmp_path / "results.json"),
                            "--commit", "abc1234", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["wall_seconds"] == 1498 and record["peak_rss_gb"] == 7.4
    assert record["stages"]["rec"] == {"train_samples": 41664, "train_seconds": 52.4, "samples_per_s": 795.8,
                                       "stage_seconds": 56.1}
    assert record["quickstart_test"]["hit@10"] == 0.1586 and record["quickstart_test"]["tokens_per_response"] == 10
    assert quickstart.summary(record).startswith("Its last measurement from a fresh clone (commit `abc1234`; ")
    assert "24 min 58 s, peak memory 7.4 GB, test Recall@10 0.159, BLEU-1 0.108" in quickstart.summary(record)


def test_a_log_without_time_lines_is_one_error(tmp_path, capsys):
    (tmp_path / "log").write_text(LOG.split("\t")[0])
    (tmp_path / "results.json").write_text(json.dumps(RESULTS))
    with pytest.raises(SystemExit):
        quickstart.main(["record", "--log", str(tmp_path / "log"), "--results", str(tmp_path / "results.json"),
                         "--commit", "x"])
    assert "no 'Elapsed (wall clock) time' line" in capsys.readouterr().err
