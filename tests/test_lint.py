"""The code passes ``ruff check`` with the project's ruff.toml (line length 120, pycodestyle errors, pyflakes,
import order). bench/ and tests/test_bench.py are left out until their owner fixes their three findings (import
order in bench/profile.py and tests/test_bench.py, a long line in bench/learnability.py)."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINTED = ("crslab_c2crs", "tests", "run_crslab.py", "setup.py")
NOT_YET = ("tests/test_bench.py",)


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (pip install -e '.[test]')")
def test_ruff_check_passes():
    excluded = [arg for path in NOT_YET for arg in ("--extend-exclude", path)]
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", *excluded, *LINTED], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
