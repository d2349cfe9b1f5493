"""Every bad setting or flag fails before any data is loaded, with one line naming the key and the fix (exit 2).

The runs here point at an empty data root: a check that came after data loading would report the missing
dataset instead, so the expected message proves the order.
"""
import os
from pathlib import Path

import pytest
import torch
import yaml

from crslab_c2crs.cli import main
from crslab_c2crs.config import STAGE_INT_KEYS, check_config, load_config
from crslab_c2crs.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_without_data(tmp_path, monkeypatch):
    """``run(model, *args)``: ``main`` from ``tmp_path`` on an empty data root; returns the exit code."""
    monkeypatch.chdir(tmp_path)

    def run(model, *args):
        return main(["-c", str(ROOT / f"config/{model}/redial.yaml"), "-g", "-1", "--data-root",
                     str(tmp_path / "no_data"), *args])

    return run


BAD_SETTINGS = [
    ("kbrd", "rec.batch_size=-4", "rec.batch_size: -4 is not an integer >= 1"),
    ("c2crs", "rec.epoch=abc", "rec.epoch: 'abc' is not an integer >= 0"),
    ("c2crs", "rec.epoch=1.5", "rec.epoch: 1.5 is not an integer >= 0"),
    ("c2crs", "rec.batch_size=0", "rec.batch_size: 0 is not an integer >= 1"),
    ("c2crs", "rec.optimizer.lr=fast", "rec.optimizer.lr: 'fast' is not a number > 0"),
    ("c2crs", "rec.optimizer.name=Adamz", "rec.optimizer.name: unknown optimizer 'Adamz'; did you mean 'Adam'?"),
    ("c2crs", "rec.max_batches=-1", "rec.max_batches: -1 is not an integer >= 1"),
    ("c2crs", "context_truncate=-5", "context_truncate: -5 is not an integer >= 1"),
    ("c2crs", "context_truncate=0", "context_truncate: 0 is not an integer >= 1"),
    ("c2crs", "ablation=no_everything", "ablation: unknown value 'no_everything'"),
    ("c2crs", "token_dim=7", "'token_dim'=7 must be divisible by n_heads=2"),
    ("c2crs", "conv.select_on=bleu", "conv.select_on: unknown selection metric 'bleu'"),
    ("c2crs", "conv.select_on=bleu@1", "set conv.decode_valid=true as well"),
    ("c2crs", "rec.decode_valid=true", "rec.decode_valid: only the conv stage reads decode_valid"),
    ("kgsf", "conv.lr_scheduler.name=Plateau", "conv.lr_scheduler.name: unknown scheduler 'Plateau'"),
    ("kgsf", "conv.lr_scheduler.patience=x", "conv.lr_scheduler: ReduceLROnPlateau does not accept"),
    ("kgsf", "pretrain.optimizer.betas=3", "pretrain.optimizer: Adam does not accept"),
    ("kgsf", "rec.early_stop=true", "rec.early_stop is true but rec.stop_mode is missing"),
    ("kgsf", "scale=0", "scale: 0 is not a fraction of the data in (0, 1]"),
    ("kbrd", "rec_targets=seeker", "rec_targets: unknown protocol 'seeker'; choose recommender or all"),
    ("popularity", "rec_targets.eval=every", "rec_targets.eval: unknown protocol 'every'"),
    ("kgsf", "pretrain_cache=yes please", "pretrain_cache: 'yes please' is not true or false"),
    ("c2crs", "end_stage=pretrain", "end_stage: unknown stage 'pretrain'"),
    ("c2crs", "rec_bias=1", "'rec_bias' must be true or false"),
    ("c2crs", "temperature=nan", "temperature: nan is not a finite number"),
    ("c2crs", "coarse_lambda=.inf", "coarse_lambda: inf is not a finite number"),
    ("c2crs", "rec.optimizer.lr=inf", "rec.optimizer.lr: inf is not a finite number"),
    ("kgsf", "conv.lr_scheduler.factor=nan", "conv.lr_scheduler.factor: nan is not a finite number"),
    ("kbrd", "dropout=nan", "dropout: nan is not a finite number"),
    ("kgsf", "relu_dropout=1.5", "relu_dropout: 1.5 is not a number in [0, 1)"),
    ("c2crs", "checkpoint_dir=" + "x" * 300, "made of folder and file names of at most 255 bytes each"),
    ("kbrd", "log_name=runs/" + "y" * 256, "made of folder and file names of at most 255 bytes each"),
    ("c2crs", "dataset=ReDial", "dataset: C2-CRS reads the datasets with mention spans and review sentences"),
    ("c2crs", "num_threads=100000", "num_threads: 100000 is not at most 4 per core"),
    ("c2crs", "pretrain_entity_dropout=1", "pretrain_entity_dropout: 1 is not a probability in [0, 1)"),
    ("c2crs", "pretrain_mask_mentions=maybe", "pretrain_mask_mentions: 'maybe' is not true or false"),
]


@pytest.mark.parametrize("model, override, message", BAD_SETTINGS, ids=[b[1][:40] for b in BAD_SETTINGS])
def test_bad_setting_fails_before_data_in_one_line(model, override, message, run_without_data, tmp_path, capsys):
    assert run_without_data(model, "--set", override) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "no_data").exists()


def test_the_message_says_where_to_fix_it(run_without_data, capsys):
    run_without_data("kbrd", "--set", "rec.batch_size=-4")
    assert "correct it in " + str(ROOT / "config/kbrd/redial.yaml") in capsys.readouterr().err


def test_bad_value_in_the_yaml_names_the_file(tmp_path):
    opt = yaml.safe_load((ROOT / "config/kbrd/redial.yaml").read_text())
    opt["conv"]["batch_size"] = -4
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(opt))
    with pytest.raises(ConfigError, match=r"conv\.batch_size: -4 is not an integer >= 1; correct it in .*bad\.yaml"):
        load_config(bad)


def test_a_new_integer_stage_key_needs_one_table_entry(monkeypatch):
    opt = load_config(ROOT / "config/kbrd/redial.yaml")
    monkeypatch.setitem(STAGE_INT_KEYS, "new_cap", 1)
    with pytest.raises(ConfigError, match=r"rec\.new_cap: 0 is not an integer >= 1"):
        check_config(dict(opt, rec=dict(opt["rec"], new_cap=0)), "x.yaml")


def test_seed_flag_is_checked(run_without_data, capsys):
    assert run_without_data("kbrd", "--seed", "-1") == 2
    assert "seed: -1 is not an integer from 0" in capsys.readouterr().err


def test_stage_flag_on_a_model_without_stages_names_the_flag(run_without_data, capsys):
    assert run_without_data("kgsf", "--stage", "rec") == 2
    err = capsys.readouterr().err
    assert "--stage rec: model KGSF has no 'start_stage' setting" in err and "--set" not in err


@pytest.mark.parametrize("args, message", [
    (["--stage", "rec", "--set", "start_stage=conv"], "--stage rec and --set start_stage=conv disagree"),
    (["--stage", "dessert"], "start_stage (--stage): unknown stage 'dessert'"),
    (["-i", "-ss"], "-i and -ss do not combine"),
    (["-i"], "-i needs -rs"),
    (["-g", "zero"], "-g zero: expected GPU ids"),
])
def test_conflicting_or_bad_flags_are_refused(args, message, run_without_data, capsys):
    assert run_without_data("c2crs", *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_flag_without_a_gpu_is_a_user_error(run_without_data, capsys):
    assert run_without_data("kbrd", "-g", "0") == 2
    assert "-g 0: no CUDA device is available; use -g -1" in capsys.readouterr().err


def test_restoring_a_missing_saved_system_fails_before_data(run_without_data, tmp_path, capsys):
    assert run_without_data("kbrd", "-rs", "-i") == 2
    err = capsys.readouterr().err
    assert "-rs: no saved system at " + str(tmp_path / "no_data" / "save" / "KBRD" / "KBRD.pth") in err
    assert "train and save one first with -ss" in err


def test_a_start_stage_after_the_end_stage_is_refused(run_without_data, capsys):
    assert run_without_data("c2crs", "--stage", "conv", "--set", "end_stage=rec") == 2
    assert "start_stage=conv comes after end_stage=rec" in capsys.readouterr().err


@pytest.mark.parametrize("config, reason", [("config", "is a folder"), ("/dev/null", "is not a regular file"),
                                            ("no/such.yaml", "does not exist")])
def test_a_config_path_that_is_no_file_says_what_it_is(config, reason, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["-c", config, "--data-root", str(tmp_path / "no_data")]) == 2
    err = capsys.readouterr().err
    assert f"config file {config} {reason}" in err and len(err.strip().splitlines()) == 1


def test_the_default_thread_count_honours_omp_num_threads(monkeypatch):
    from crslab_c2crs.reproducibility import default_threads, seed_everything

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert default_threads() == 1
    seed_everything(0)
    assert torch.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert default_threads() == (os.cpu_count() or 1)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() == (os.cpu_count() or 1)
