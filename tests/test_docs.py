"""The README and docs/ pages: every relative link and image resolves (anchors included), and the commands in the
README's code blocks name files, modules, make targets, flags and config keys that exist."""
import re
import shlex
from pathlib import Path

import pytest

from crslab_c2crs.cli import build_parser
from crslab_c2crs.config import load_config

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(header: str) -> str:
    """GitHub's anchor of a header: lower case, punctuation dropped, spaces as hyphens (link text kept)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", header.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def outside_code(text: str):
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield line


def anchors(path: Path) -> set:
    return {slug(re.sub(r"^#+ ", "", line)) for line in outside_code(path.read_text(encoding="utf-8"))
            if re.match(r"^#{1,6} ", line)}


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_relative_link_resolves(page):
    broken = []
    for line in outside_code(page.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file_part, _, anchor = target.partition("#")
            path = (page.parent / file_part).resolve() if file_part else page
            if not path.exists():
                broken.append(target)
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(target)
    assert not broken, f"{page.name}: {broken}"


def readme_commands():
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)
    for block in blocks:
        for line in block.splitlines():
            command = line.split("  #")[0].strip()
            if command:
                yield command


def test_readme_commands_name_what_exists(monkeypatch):
    monkeypatch.chdir(ROOT)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    checked = 0
    for command in readme_commands():
        words = shlex.split(command)
        if words[0] == "make":
            assert re.search(rf"^{words[1]}:", makefile, flags=re.M), command
        elif "run_crslab.py" in words:
            args = build_parser().parse_args(words[words.index("run_crslab.py") + 1:])
            load_config(ROOT / args.config, args.overrides, stage=args.stage, seed=args.seed)  # keys and values
        elif words[1:3] == ["-m", "crslab_c2crs.interactive.web"]:
            from crslab_c2crs.interactive.web import parse_args

            for spec in parse_args(words[3:]).specs:  # config files, as the README runs them from the root
                load_config(ROOT / spec.config, spec.overrides)
        elif words[1:2] == ["-m"] and words[2].split(".")[0] in ("bench", "crslab_c2crs"):
            module = words[2].replace(".", "/")
            assert (ROOT / f"{module}.py").exists() or (ROOT / module / "__main__.py").exists(), command
        else:
            continue
        checked += 1
    assert checked >= 8


def test_the_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 260


def test_the_result_tables_are_those_of_the_committed_report(capsys):
    """The README's and docs' result tables and findings are cog blocks over the committed records
    (bench/results/redial-rec.json, chat-linker.json, redial-quickstart.json): a figure edited by hand, or a record
    rebuilt without regenerating them, fails here."""
    from cogapp import Cog

    from bench.redial import COG_DOCS

    status = Cog().main(["cog", "--check", *(str(ROOT / path) for path in COG_DOCS)])
    assert status == 0, ("the docs' tables differ from the committed report; rebuild them with "
                         f"`python -m bench.recommendation report`:\n{capsys.readouterr().out}")
