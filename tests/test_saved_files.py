"""Checkpoints, saved systems and results: unwritable places refused before training, atomic writes, saved
systems under the run's checkpoint_dir, one-line errors for missing, damaged or mismatched files."""
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import crslab.config
from crslab_c2crs.checkpoints import MODEL_CONFIG_KEY, load_into, load_state, save_state, with_model_config
from crslab_c2crs.cli import main
from crslab_c2crs.config import load_config
from crslab_c2crs.errors import CheckpointError
from crslab_c2crs.model.c2crs.config import C2CRSConfig
from crslab_c2crs.paths import saved_system_file
from tests.tiny_runs import SHORT

ROOT = Path(__file__).resolve().parent.parent


def argv(model, root, *extra):
    args = ["-c", str(ROOT / f"config/{model.lower()}/redial.yaml"), "-g", "-1", "--data-root", str(root),
            "--seed", "1", "--set", "num_threads=1"]
    for override in SHORT[model]:
        args += ["--set", override]
    return args + list(extra)


def one_line_error(capsys, *fragments):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("run_crslab.py: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------------------- places refused up front
def test_results_path_that_is_a_folder_is_refused_before_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv("KBRD", tmp_path / "no_data", "--results", str(tmp_path))) == 2
    one_line_error(capsys, f"--results {tmp_path}: is a folder")


def test_save_folder_that_is_a_file_is_refused_before_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    (root / "save").write_text("not a folder")
    assert main(argv("C2CRS", root)) == 2
    one_line_error(capsys, "checkpoint_dir (stage checkpoints)", f"{root / 'save'} is a file")
    assert main(argv("KBRD", root, "-ss")) == 2
    one_line_error(capsys, "-ss (saved system)", "is a file")


def test_unwritable_save_folder_is_refused_before_data(tmp_path, monkeypatch, capsys, refuse_writes_under):
    monkeypatch.chdir(tmp_path)
    save = tmp_path / "root" / "save"
    save.mkdir(parents=True)
    refuse_writes_under(save)
    assert main(argv("C2CRS", tmp_path / "root")) == 2
    one_line_error(capsys, f"cannot write into {save} (Permission denied)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_save_folder_is_refused_before_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    save = tmp_path / "root" / "save"
    save.mkdir(parents=True)
    save.chmod(0o555)
    try:
        assert main(argv("KBRD", tmp_path / "root", "-ss")) == 2
    finally:
        save.chmod(0o755)
    one_line_error(capsys, f"cannot write into {save}")


# ---------------------------------------------------------------------------------- atomic writes
def test_a_crash_while_saving_keeps_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "run" / "rec.pth"
    save_state({"model_state_dict": {"w": torch.ones(3)}}, path)

    def dies_half_way(obj, stream, *args, **kwargs):
        stream.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError):
        save_state({"model_state_dict": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(load_state(path, "cpu", "x")["model_state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in path.parent.iterdir()) == ["rec.pth"]


def test_the_model_config_is_saved_beside_the_weights_and_files_without_it_still_load(tmp_path):
    model = torch.nn.Linear(2, 2)
    model.config = C2CRSConfig(vocab_size=4, n_entity=2, n_relation=1, token_dim=16)
    path = save_state(with_model_config({"model_state_dict": model.state_dict()}, model), tmp_path / "new.pth")
    assert load_state(path, "cpu", "remedy")[MODEL_CONFIG_KEY] == model.config.to_dict()
    assert C2CRSConfig(**load_state(path, "cpu", "remedy")[MODEL_CONFIG_KEY]) == model.config
    old = save_state({"model_state_dict": model.state_dict()}, tmp_path / "old.pth")
    load_into(model, load_state(old, "cpu", "remedy"), "model_state_dict", old, "remedy")
    assert with_model_config({"weights": 1}, torch.nn.Linear(1, 1)) == {"weights": 1}


def test_a_truncated_checkpoint_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "conv.pth"
    save_state({"model_state_dict": {"w": torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=r"conv\.pth is damaged or not a checkpoint \(.*\): retrain") as err:
        load_state(path, "cpu", "retrain")
    assert "\n" not in str(err.value)


def test_resuming_from_a_damaged_or_foreign_stage_checkpoint_is_one_line(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = tiny_root / "save" / "damaged_rec"
    folder.mkdir(parents=True)
    (folder / "rec.pth").write_bytes(b"PK\x03\x04 not really")
    run = argv("C2CRS", tiny_root, "--set", "checkpoint_dir=damaged_rec", "--stage", "conv")
    assert main(run) == 2
    one_line_error(capsys, f"{folder / 'rec.pth'} is damaged or not a checkpoint", "Run the earlier stages first")
    torch.save({"model_state_dict": {"other.weight": torch.zeros(2)}}, folder / "rec.pth")
    assert main(run) == 2
    one_line_error(capsys, f"{folder / 'rec.pth'} does not fit the configured model")


# ---------------------------------------------------------------------------------- saved systems
def test_saved_system_lives_in_the_runs_checkpoint_dir():
    opt = load_config(ROOT / "config/c2crs/redial.yaml", ["checkpoint_dir=C2CRS_quickstart"])
    assert saved_system_file(opt) == Path(crslab.config.SAVE_PATH) / "C2CRS_quickstart" / "C2CRS.pth"


def test_runs_with_different_checkpoint_dirs_do_not_overwrite_each_other(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv("KBRD", tiny_root, "-ss", "--set", "checkpoint_dir=run_a")) == 0
    first = (tiny_root / "save" / "run_a" / "KBRD.pth").read_bytes()
    assert main(argv("KBRD", tiny_root, "-ss", "--set", "checkpoint_dir=run_b", "--seed", "2")) == 0
    assert (tiny_root / "save" / "run_b" / "KBRD.pth").is_file()
    assert (tiny_root / "save" / "run_a" / "KBRD.pth").read_bytes() == first
    assert not (tiny_root / "save" / "KBRD.pth").exists()


def test_restoring_from_another_checkpoint_dir_lists_the_saved_ones(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv("KBRD", tiny_root, "-ss", "--set", "checkpoint_dir=listed")) == 0
    assert main(argv("KBRD", tiny_root, "-rs", "-i", "--set", "checkpoint_dir=elsewhere")) == 2
    line = one_line_error(capsys, "-rs: no saved system at " + str(tiny_root / "save" / "elsewhere" / "KBRD.pth"))
    assert "listed" in line.split("saved KBRD systems: checkpoint_dir ", 1)[1]


def test_restoring_a_mismatched_or_damaged_saved_system_is_one_line(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv("KBRD", tiny_root, "-ss", "--set", "checkpoint_dir=small")) == 0
    saved = tiny_root / "save" / "small" / "KBRD.pth"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(argv("KBRD", tiny_root, "-rs", "-i", "--set", "checkpoint_dir=small", "--set", "kg_emb_dim=8")) == 2
    one_line_error(capsys, f"{saved} does not fit the configured model (size mismatch for", "with -ss")
    saved.write_bytes(saved.read_bytes()[:1000])
    assert main(argv("KBRD", tiny_root, "-rs", "-i", "--set", "checkpoint_dir=small")) == 2
    one_line_error(capsys, f"{saved} is damaged or not a checkpoint")


# ---------------------------------------------------------------------------------- faults during a run
def test_a_full_disk_while_saving_is_one_line_naming_the_file(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("crslab_c2crs.atomic.os.fsync", disk_full)
    assert main(argv("C2CRS", tiny_root, "--set", "checkpoint_dir=full_disk", "--set", "end_stage=coarse")) == 2
    path = tiny_root / "save" / "full_disk" / "coarse.pth"
    one_line_error(capsys, f"cannot write {path}: No space left on device")
    assert list(path.parent.iterdir()) == []  # no temporary file is left


def test_too_little_free_space_is_refused_before_the_stage(tiny_root, tmp_path, monkeypatch, capsys):
    import shutil

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("crslab_c2crs.checkpoints.shutil.disk_usage",
                        lambda path: shutil._ntuple_diskusage(10 ** 9, 10 ** 9, 1024))
    trained = []
    monkeypatch.setattr("crslab_c2crs.system.c2crs.C2CRSSystem._run_epoch",
                        lambda self, *args, **kwargs: trained.append(1))
    assert main(argv("C2CRS", tiny_root, "--set", "checkpoint_dir=no_space")) == 2
    one_line_error(capsys, f"{tiny_root / 'save' / 'no_space'}: 0 MB free, but the coarse stage writes a checkpoint")
    assert not trained


def test_a_nan_training_loss_stops_the_run_naming_stage_and_step(tiny_root, tmp_path, monkeypatch, capsys):
    from crslab_c2crs.model.c2crs.model import C2CRSModel

    monkeypatch.chdir(tmp_path)
    pretrain = C2CRSModel.pretrain
    monkeypatch.setattr(C2CRSModel, "pretrain",
                        lambda self, batch, level: (lambda out: (out[0] * float("nan"), out[1]))(
                            pretrain(self, batch, level)))
    results = tmp_path / "results.json"
    assert main(argv("C2CRS", tiny_root, "--set", "checkpoint_dir=nan_loss", "--results", str(results))) == 2
    one_line_error(capsys, "the coarse stage's training loss became nan at step 1; the run stops here")
    assert not results.exists() and not (tiny_root / "save" / "nan_loss" / "coarse.pth").exists()


def test_temporary_files_of_a_run_killed_while_saving_are_removed_by_the_next(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tiny_root / "save" / "killed"
    folder.mkdir(parents=True)
    with subprocess.Popen([sys.executable, "-c", "pass"]) as gone:
        gone.wait()
    stale = folder / f".coarse.pth.{gone.pid}.a1b2c3d4.tmp"
    stale.write_bytes(b"PK\x03\x04 half")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as running:
        try:
            busy = folder / f".fine.pth.{running.pid}.a1b2c3d4.tmp"
            busy.write_bytes(b"PK\x03\x04 being written")
            assert main(argv("C2CRS", tiny_root, "--set", "checkpoint_dir=killed", "--set", "end_stage=coarse")) == 0
            assert not stale.exists() and busy.exists()  # the file of a live process is left alone
        finally:
            running.kill()


def test_a_checkpoint_of_another_stage_or_model_setting_is_refused(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = tiny_root / "save" / "mismatch"
    run = argv("C2CRS", tiny_root, "--set", "checkpoint_dir=mismatch")
    assert main(run + ["--set", "end_stage=coarse"]) == 0
    shutil.copy(folder / "coarse.pth", folder / "fine.pth")
    assert main(run + ["--stage", "rec"]) == 2
    one_line_error(capsys, f"{folder / 'fine.pth'} holds the coarse stage, not the fine stage (was it renamed?)")
    assert main(run + ["--set", "end_stage=fine", "--stage", "fine"]) == 0
    assert main(run + ["--stage", "rec", "--set", "kg_aggregation=mean"]) == 2
    one_line_error(capsys, "fine.pth was trained with kg_aggregation='sum', this run has kg_aggregation='mean'")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_written_files_get_the_permissions_of_the_umask(umask, mode, tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    previous = os.umask(umask)
    try:
        results = tmp_path / "results.json"
        assert main(argv("C2CRS", tiny_root, "--set", "checkpoint_dir=modes", "--set", "end_stage=coarse",
                         "--results", str(results))) == 0
    finally:
        os.umask(previous)
    assert results.stat().st_mode & 0o777 == mode
    assert (tiny_root / "save" / "modes" / "coarse.pth").stat().st_mode & 0o777 == mode
