"""The builder's reader, settings and folders: every input fault is one line naming the file and line, bad settings
and unwritable data roots fail before the conversion, killed builds leave nothing that confuses the next one."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crslab_c2crs.cli import main as run_main
from crslab_c2crs.data.__main__ import main
from crslab_c2crs.data.builder import DataBuildError, build_redial
from crslab_c2crs.data.layout import redial_dir, redial_kgsf_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def conversion_must_not_start(monkeypatch):
    """Fail the test if the conversion is reached: the check under test must come first."""
    def converted(*_args, **_kwargs):
        raise AssertionError("the conversion started before the check")

    monkeypatch.setattr("crslab_c2crs.data.builder.redial.convert_split", converted)


@pytest.mark.parametrize("threshold", ["500", "-5", "nan"])
def test_bad_threshold_is_refused_before_the_conversion(threshold, tiny_raw_dir, tmp_path, capsys,
                                                        conversion_must_not_start):
    code = main(["build", "redial", "--raw", str(tiny_raw_dir), "--data-root", str(tmp_path),
                 "--threshold", threshold])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --threshold {float(threshold)}: must be a number from 0 to 100")
    assert "Traceback" not in err


def test_data_root_that_is_a_file_is_refused_before_the_conversion(tiny_raw_dir, tmp_path,
                                                                   conversion_must_not_start):
    root = tmp_path / "root"
    root.write_text("a file")
    with pytest.raises(DataBuildError, match=f"--data-root {root}: {root} is a file"):
        build_redial(tiny_raw_dir, root)


def test_unwritable_data_root_is_refused_before_the_conversion(tiny_raw_dir, tmp_path, refuse_writes_under,
                                                               conversion_must_not_start):
    root = tmp_path / "root"
    root.mkdir()
    refuse_writes_under(root)
    with pytest.raises(DataBuildError, match=f"cannot write into {root} \\(Permission denied\\)"):
        build_redial(tiny_raw_dir, root)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporary_folders_of_killed_builds_are_removed(tiny_raw_dir, tmp_path):
    stale = [redial_dir(tmp_path).parent / f".nltk.tmp-{_dead_pid()}-20250101-000000",
             redial_kgsf_dir(tmp_path).parent / f".ReDial.tmp-{_dead_pid()}-20250101-000000"]
    for folder in stale:
        folder.mkdir(parents=True)
        (folder / "train_data.json").write_text("[half")
    build_redial(tiny_raw_dir, tmp_path)
    assert not any(folder.exists() for folder in stale)
    assert sorted(p.name for p in redial_dir(tmp_path).parent.iterdir()) == ["nltk"]


def test_a_running_build_in_the_same_root_is_reported(tiny_raw_dir, tmp_path, conversion_must_not_start):
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            running = redial_dir(tmp_path).parent / f".nltk.tmp-{other.pid}-20250101-000000"
            running.mkdir(parents=True)
            with pytest.raises(DataBuildError, match=f"another build \\(process {other.pid}\\) is writing"):
                build_redial(tiny_raw_dir, tmp_path)
            assert running.is_dir()
        finally:
            other.kill()


def test_a_second_build_into_one_root_is_refused_at_once(tiny_raw_dir, tmp_path, conversion_must_not_start,
                                                        capsys):
    from crslab_c2crs.data.builder.output import build_lock

    with build_lock(tmp_path):  # the first build, still running
        code = main(["build", "redial", "--raw", str(tiny_raw_dir), "--data-root", str(tmp_path)])
    assert code == 2
    assert f"another build is running into {tmp_path}" in capsys.readouterr().err
    assert not redial_dir(tmp_path).exists()


def test_the_build_hint_for_a_missing_copy_mask_is_a_command_that_works(tiny_raw_dir, tmp_path, monkeypatch,
                                                                        capsys):
    root = tmp_path / "root"
    build_redial(tiny_raw_dir, root)
    shutil.rmtree(redial_kgsf_dir(root))
    monkeypatch.chdir(tmp_path)
    assert run_main(["-c", str(ROOT / "config/kgsf/redial.yaml"), "-g", "-1", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    hint = err.split("Build it offline from raw ReDial with: ", 1)[1].split(" (this moves", 1)[0].split()
    assert hint[:5] == ["python", "-m", "crslab_c2crs.data", "build", "redial"] and "--force" in hint
    args = hint[5:]
    args[args.index("--raw") + 1] = str(tiny_raw_dir)
    assert main(["build", "redial"] + args) == 0
    assert (redial_kgsf_dir(root) / "copy_mask.npy").is_file()
