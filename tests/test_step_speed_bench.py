"""bench.step_speed on hand-made timings: option parsing, same-batch ratios, the docs table."""
import pytest

from bench import step_speed


def test_an_option_splits_into_config_overrides_and_optimizer_arguments():
    name, overrides, optimizer = step_speed.parse_option("all=mixed_precision=bf16,optimizer.fused=true")
    assert (name, overrides, optimizer) == ("all", ["mixed_precision=bf16"], {"fused": True})
    assert step_speed.parse_option("fp32=") == ("fp32", [], {})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        step_speed.parse_option("bad=mixed_precision")
    with pytest.raises(ValueError, match="name"):
        step_speed.parse_option("=fast_dropout=true")


def test_speed_ups_pair_the_steps_of_one_batch():
    # the machine slows down on the second batch: both options feel it, the per-batch ratio does not
    times = {"ref": [2.0, 4.0, 2.0], "fast": [1.0, 2.0, 1.25]}
    summary = step_speed.summarise(times, [256, 256, 128])
    assert summary["ref"]["speedup_median"] == 1.0
    assert summary["fast"]["speedup_median"] == 2.0
    assert (summary["fast"]["speedup_min"], summary["fast"]["speedup_max"]) == (1.6, 2.0)
    assert summary["fast"]["samples_per_s"] == pytest.approx(640 / 4.25)
    report = {"options": {"ref": [], "fast": ["fast_dropout=true"]}, "stages": {"coarse": summary}}
    table = step_speed.docs_table(report)
    assert "| fast | 1.25 | **2.00x** |" in table and table.count("\n") == 3


def test_bad_flags_are_refused_before_any_work(capsys):
    for argv, flag in ((["--stages", "rec"], "--stages"), (["--rounds", "1"], "--rounds"),
                       (["--option", "x=y"], "--option 'x=y'")):
        with pytest.raises(SystemExit):
            step_speed.main(argv)
        assert flag in capsys.readouterr().err
