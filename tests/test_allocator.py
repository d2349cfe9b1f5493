"""--allocator: the run starts again with tcmalloc or jemalloc preloaded, and trains exactly as with the system's."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from crslab_c2crs import allocator
from crslab_c2crs.errors import ConfigError
from tests.tiny_runs import SHORT

ROOT = Path(__file__).resolve().parent.parent


def installed(choice):
    try:
        return bool(allocator.library(choice))
    except ConfigError:
        return False


def test_unknown_and_missing_allocators_are_one_line(monkeypatch):
    with pytest.raises(ConfigError, match="--allocator tcmallloc: choose one of system, tcmalloc, jemalloc"):
        allocator.preload("tcmallloc")
    monkeypatch.setattr(allocator.ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(allocator, "in_use", lambda: "system")
    with pytest.raises(ConfigError, match="apt install libjemalloc2"):
        allocator.preload("jemalloc")


def test_the_system_allocator_needs_nothing():
    allocator.preload("system", [])  # returns: nothing to start again
    assert allocator.in_use() in allocator.CHOICES


@pytest.mark.skipif(not installed("tcmalloc"), reason="tcmalloc is not installed (apt install libtcmalloc-minimal4)")
def test_an_in_process_call_or_a_failed_preload_is_named(monkeypatch):
    monkeypatch.setattr(allocator, "in_use", lambda: "system")
    with pytest.raises(ConfigError, match="in-process call cannot"):
        allocator.preload("tcmalloc", ["-c", "x.yaml"])
    monkeypatch.setenv("CRSLAB_C2CRS_ALLOCATOR", "tcmalloc")  # started again, and still not loaded
    with pytest.raises(ConfigError, match="did not load"):
        allocator.preload("tcmalloc")


@pytest.mark.skipif(not sys.platform.startswith("linux") or not installed("tcmalloc"),
                    reason="tcmalloc is preloaded on Linux, when installed (apt install libtcmalloc-minimal4)")
def test_a_run_under_tcmalloc_is_the_same_run(tiny_root, tmp_path):
    histories = {}
    for choice in ("system", "tcmalloc"):
        results = tmp_path / f"{choice}.json"
        argv = [sys.executable, str(ROOT / "run_crslab.py"), "-c", str(ROOT / "config/c2crs/redial.yaml"), "-g",
                "-1", "--data-root", str(tiny_root), "--seed", "3", "--results", str(results), "--allocator", choice]
        for override in SHORT["C2CRS"] + ["num_threads=1", "end_stage=rec", f"checkpoint_dir=alloc_{choice}"]:
            argv += ["--set", override]
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(results.read_text())
        assert result["allocator"] == choice
        histories[choice] = [entry["metrics"] for entry in result["history"]]
    assert histories["tcmalloc"] == histories["system"]
