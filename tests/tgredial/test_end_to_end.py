"""KGSF, KBRD and C2-CRS on the tiny TG-ReDial data through run_crslab.py: every stage trains and is evaluated,
the system is saved, and a scripted Chinese chat (titles in 《》) runs on the restored system; a data root without
TG-ReDial fails in seconds naming the files."""
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from crslab_c2crs.cli import main
from tests.tiny_runs import SHORT

ROOT = Path(__file__).resolve().parents[2]
# an empty line, punctuation only, an unknown title, a 3,000-character line, a typo in a title, English
SCRIPT = ("你好，我喜欢《霸王别姬》和周星驰的喜剧\n\n？！\n《一部不存在的电影》\n" + "很" * 3000 +
          "\n《霸王别鸡》怎么样\nI like Tom Hanks ☃\n[RESET]\n有没有宫崎骏的动画电影？《星空下的猫》也不错\n[EXIT]\n"
          "这一行不会被读到\n")


def _argv(model, root):
    argv = ["-c", str(ROOT / f"config/{model.lower()}/tgredial.yaml"), "-g", "-1", "--data-root", str(root),
            "--seed", "1", "--set", "num_threads=1"]
    for override in SHORT[model]:
        argv += ["--set", override]
    return argv


@pytest.mark.slow
@pytest.mark.parametrize("model", ["KGSF", "KBRD", "C2CRS"])
def test_train_evaluate_save_and_chat_in_chinese(model, tg_root, tmp_path, monkeypatch):
    root = tmp_path / "root"
    shutil.copytree(tg_root, root)
    monkeypatch.chdir(tmp_path)
    assert main(_argv(model, root) + ["-ss", "--results", str(tmp_path / "results.json")]) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    for key in ("hit@1", "hit@10", "hit@50", "bleu@1", "dist@2", "dist_ratio@2"):
        assert key in result["test"], key
    assert {"train", "test"} <= {entry["mode"] for entry in result["history"]}
    if model == "C2CRS":
        saved = {p.name for p in (root / "save" / "C2CRS_TGReDial").glob("*.pth")}
        assert {"coarse.pth", "fine.pth", "rec.pth", "conv.pth"} <= saved

    files_before = sorted(str(p) for p in root.rglob("*"))
    monkeypatch.setattr("sys.stdin", io.StringIO(SCRIPT))
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    assert main(_argv(model, root) + ["-rs", "-i"]) == 0
    transcript = out.getvalue()
    assert sorted(str(p) for p in root.rglob("*")) == files_before
    assert "Linked: 《霸王别姬》" in transcript  # also with a typo: 《霸王别鸡》
    assert transcript.count("Linked: 《霸王别姬》") == 2
    assert "Entities: 周星驰, 喜剧" in transcript
    assert "Linked: 《星空下的猫》" in transcript and "Entities: 宫崎骏, 动画" in transcript
    assert "only its last 256 words" in transcript and "Say something about movies" in transcript
    assert "这一行不会被读到" not in transcript
    replies = re.findall(r"^System: (.*)$", transcript, flags=re.M)
    recommendations = re.findall(r"^Recommended: (.*)$", transcript, flags=re.M)
    assert len(replies) == len(recommendations) == 7
    first = re.findall(r"\d+\. 《(.+?)》", recommendations[0])
    assert len(first) == 5 and "霸王别姬" not in first  # a movie the user named is never recommended
    assert not any(re.search(r"[\u4e00-\u9fff] [\u4e00-\u9fff]", reply) for reply in replies)  # Chinese spacing


def test_a_data_root_without_tgredial_fails_fast_naming_the_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["-c", str(ROOT / "config/kgsf/tgredial.yaml"), "-g", "-1", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "dataset" / "tgredial" / "pkuseg" / "train_data.json") in err
    assert "python -m crslab_c2crs.data build tgredial" in err
    assert "Traceback" not in err


def test_kgsf_without_its_copy_mask_names_the_folder(tg_root, tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    shutil.copytree(tg_root, root)
    shutil.rmtree(root / "model" / "kgsf" / "TGReDial")
    monkeypatch.chdir(tmp_path)
    assert main(_argv("KGSF", root)) == 2
    err = capsys.readouterr().err
    assert str(root / "model" / "kgsf" / "TGReDial") in err and "build tgredial" in err
