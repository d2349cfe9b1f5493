"""Interactive mode through run_crslab.py -rs -i with a piped script, for KGSF, KBRD and C2-CRS: titles are
linked, recommendations are titles, bad input does not crash, nothing is written to the data root."""
import io
import re
from pathlib import Path

import pytest

from crslab_c2crs.cli import main
from tests.tiny_runs import SHORT

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "\n".join([
    "hi , I like the shinning ( 1991 ) and Forrest Gump",
    "",
    "?!?!",
    "blorf zzkx quux",
    "x" * 10000,
    " ".join(["funny"] * 3000),
    "Ich mag Filme über Paris — très bien ☃",
    "have you seen @100007 ?",
    "I liked a movie called Qwertyuiop Asdfgh",
    "[RESET]",
    "any funny movie with Tom Hanks ?",
    "[EXIT]",
    "this line is never read",
]) + "\n"


def chat_transcript(model, root, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    base = ["-c", str(ROOT / f"config/{model.lower()}/redial.yaml"), "-g", "-1", "--data-root", str(root),
            "--seed", "1", "--set", "num_threads=1"]
    for override in SHORT[model]:
        base += ["--set", override]
    assert main(base + ["-ss"]) == 0
    saved = sorted(p.name for p in (Path(root) / "save").iterdir())
    monkeypatch.setattr("sys.stdin", io.StringIO(SCRIPT))
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    assert main(base + ["-rs", "-i"]) == 0
    assert sorted(p.name for p in (Path(root) / "save").iterdir()) == saved
    return out.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["KGSF", "KBRD", "C2CRS"])
def test_scripted_chat(model, tiny_root, tmp_path, monkeypatch):
    transcript = chat_transcript(model, tiny_root, tmp_path, monkeypatch)
    assert "Linked: The Shining (1991), Forrest Gump (1993)" in transcript
    assert "Linked: Tiny Picture 7 (1997)" in transcript
    assert "Entities: Tom Hanks" in transcript
    replies = re.findall(r"^System: (.*)$", transcript, flags=re.M)
    recommendations = re.findall(r"^Recommended: (.*)$", transcript, flags=re.M)
    assert len(replies) == len(recommendations) >= 6
    titles = re.findall(r"\d+\. (.+?) \((\d{4})\)", recommendations[0])
    assert len(titles) == 5
    assert all(not title.startswith("@") for title, _ in titles)
    assert "only its last" in transcript
    assert "Say something about movies" in transcript
    assert "(New conversation.)" in transcript
    assert "never read" not in transcript
    assert "Traceback" not in transcript
    assert "Latency" in transcript


@pytest.mark.slow
def test_chat_through_a_real_pipe(tiny_root, tmp_path, monkeypatch):
    """The documented shell usage: a script piped into run_crslab.py -rs -i in a separate process."""
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    base = ["-c", str(ROOT / "config/kbrd/redial.yaml"), "-g", "-1", "--data-root", str(tiny_root),
            "--set", "num_threads=1"] + [arg for override in SHORT["KBRD"] for arg in ("--set", override)]
    assert main(base + ["-ss"]) == 0
    proc = subprocess.run([sys.executable, str(ROOT / "run_crslab.py")] + base + ["-rs", "-i"],
                          input="I like Forrest Gump\n\n", capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Linked: Forrest Gump (1993)" in proc.stdout
    assert re.search(r"^Recommended: 1\. .+ \(\d{4}\)", proc.stdout, flags=re.M)
    assert "Traceback" not in proc.stderr
