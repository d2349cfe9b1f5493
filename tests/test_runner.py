"""run_crslab.py end to end on the tiny dataset built from tiny raw ReDial: KGSF and KBRD train, evaluate and print
metrics; a missing dataset fails fast with a message that says what to build."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crslab_c2crs.cli import main
from tests.tiny_runs import SHORT

ROOT = Path(__file__).resolve().parent.parent


def run_model(model, root, workdir, extra=(), monkeypatch=None):
    results = workdir / f"{model}.json"
    argv = ["-c", str(ROOT / f"config/{model.lower()}/redial.yaml"), "-g", "-1", "--data-root", str(root),
            "--seed", "1", "--results", str(results), "--set", "num_threads=1"]
    for override in SHORT[model] + list(extra):
        argv += ["--set", override]
    assert main(argv) == 0
    return json.loads(results.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("model", ["KGSF", "KBRD"])
def test_baseline_runs_and_reports_metrics(model, tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    result = run_model(model, tiny_root, tmp_path)
    test = result["test"]
    for key in ("hit@1", "hit@10", "hit@50", "dist@2", "dist_ratio@2", "bleu@1"):
        assert key in test, key
    assert 0.0 <= test["hit@50"] <= 1.0
    assert 0.0 <= test["dist_ratio@2"] <= 1.0
    printed = capsys.readouterr().out
    assert "Recall@10" in printed and "Dist-2 (paper)" in printed and "Dist-2 (CRSLab)" in printed
    assert not (ROOT / "log").exists() or tmp_path != ROOT


@pytest.mark.slow
def test_fast_rgcn_switch_gives_the_same_kbrd_metrics(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stock = run_model("KBRD", tiny_root, tmp_path, ["fast_rgcn=false"])["test"]
    fast = run_model("KBRD", tiny_root, tmp_path, ["fast_rgcn=true"])["test"]
    assert stock["hit@50"] == pytest.approx(fast["hit@50"], abs=1e-6)
    assert stock["hit@10"] == pytest.approx(fast["hit@10"], abs=1e-6)


@pytest.mark.parametrize("model", ["KGSF", "KBRD"])
def test_baselines_train_in_training_mode_and_validate_and_test_in_eval_mode(model, tiny_root, tmp_path, monkeypatch):
    """CRSLab's systems never leave training mode; ours validate and test without dropout."""
    import crslab_c2crs.system.baselines as baselines

    monkeypatch.chdir(tmp_path)
    stock = baselines._stock_kgsf if model == "KGSF" else baselines._stock_kbrd
    seen = set()
    stock_step = stock.step
    monkeypatch.setattr(stock, "step", lambda self, batch, stage, mode: seen.add((stage, mode, self.model.training))
                        or stock_step(self, batch, stage, mode))
    run_model(model, tiny_root, tmp_path, ["conv.test_max_batches=1"])
    assert {(stage, mode) for stage, mode, _ in seen} >= {("rec", "train"), ("rec", "test"), ("conv", "train"),
                                                           ("conv", "test")}
    assert all(training == (mode == "train") for _, mode, training in seen)


def test_kgsf_pretraining_is_kept_once_and_restored_by_later_runs(tiny_root, tmp_path, monkeypatch):
    import crslab_c2crs.system.baselines as baselines

    monkeypatch.chdir(tmp_path)
    pretrained = []
    stock_pretrain = baselines._stock_kgsf.pretrain
    monkeypatch.setattr(baselines._stock_kgsf, "pretrain", lambda self: pretrained.append(1) or stock_pretrain(self))
    cache = ["pretrain_cache=true", "checkpoint_dir=kgsf_cache", "conv.epoch=0", "conv.test_max_batches=1"]
    run_model("KGSF", tiny_root, tmp_path, cache + ["rec.epoch=0"])
    path = tiny_root / "save" / "kgsf_cache" / "pretrain.pth"
    assert pretrained == [1] and path.is_file()
    written = path.stat().st_mtime_ns
    first = run_model("KGSF", tiny_root, tmp_path, cache)["test"]
    second = run_model("KGSF", tiny_root, tmp_path, cache)["test"]
    assert pretrained == [1] and path.stat().st_mtime_ns == written  # restored, never pre-trained again
    assert first == second  # the same pre-trained model and seed give the same rec run


@pytest.mark.slow
def test_same_seed_gives_same_metrics(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = run_model("KBRD", tiny_root, tmp_path)["test"]
    second = run_model("KBRD", tiny_root, tmp_path)["test"]
    assert first == second


def test_missing_dataset_fails_fast_with_build_command(tmp_path):
    empty = tmp_path / "empty_root"
    started = time.time()
    proc = subprocess.run([sys.executable, str(ROOT / "run_crslab.py"), "-c", str(ROOT / "config/kgsf/redial.yaml"),
                           "--data-root", str(empty)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    elapsed = time.time() - started
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert str(empty / "dataset" / "redial" / "nltk") in proc.stderr
    assert "python -m crslab_c2crs.data build redial" in proc.stderr
    assert elapsed < 120
    assert not (empty / "dataset" / "redial" / "nltk").exists()


def test_unknown_config_key_is_an_error_naming_it(tmp_path, capsys):
    code = main(["-c", str(ROOT / "config/kbrd/redial.yaml"), "--data-root", str(tmp_path), "--set", "rec.epochs=1"])
    assert code == 2
    assert "unknown key rec.'epochs'" in capsys.readouterr().err


@pytest.mark.slow
def test_kbrd_keeps_the_recommender_its_rec_test_scored(tiny_root, tmp_path, monkeypatch):
    """CRSLab's conv stage trains all of KBRD, its KG encoder too: -ss keeps the recommender as the rec test scored
    it, and a restored system ranks with it (a test pass of the restored system repeats the rec test exactly)."""
    import torch

    monkeypatch.chdir(tmp_path)
    argv = ["-c", str(ROOT / "config/kbrd/redial.yaml"), "-g", "-1", "--data-root", str(tiny_root), "--seed", "1"]
    for override in SHORT["KBRD"] + ["num_threads=1", "checkpoint_dir=kbrd_keep", "conv.epoch=2"]:
        argv += ["--set", override]
    assert main(argv + ["-ss", "--results", str(tmp_path / "trained.json")]) == 0
    folder = tiny_root / "save" / "kbrd_keep"
    after_conv = torch.load(folder / "KBRD.pth", weights_only=False)["model_state_dict"]
    kept = torch.load(folder / "KBRD-rec.pth", weights_only=False)["model_state_dict"]
    assert any(not torch.equal(after_conv[key], kept[key]) for key in kept if key.startswith("kg_encoder"))
    assert main(argv + ["-rs", "--set", "rec.epoch=0", "--set", "conv.epoch=0",
                        "--results", str(tmp_path / "restored.json")]) == 0
    trained, restored = (json.loads((tmp_path / name).read_text())["test"] for name in ("trained.json",
                                                                                         "restored.json"))
    assert all(restored[key] == trained[key] for key in ("hit@1", "hit@10", "hit@50", "mrr@10"))
    # the length KBRD decodes to is saved with it (a restored KBRD without it answered in one token)
    saved = torch.load(folder / "KBRD.pth", weights_only=False)["model_attributes"]
    assert saved["longest_label"] > 1
