"""The code passes ``ruff check`` with the project's ruff.toml (line length 120, pycodestyle errors, pyflakes,
import order)."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINTED = ("crslab_c2crs", "bench", "tests", "run_crslab.py", "setup.py")


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (pip install -e '.[test]')")
def test_ruff_check_passes():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", *LINTED], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
