"""How well the chat links movie titles: precision and recall of :class:`~crslab_c2crs.interactive.linker.MovieLinker`,
with its everyday-title rule and without it (every title fuzzy-matched in any case, as before the rule).

Usage::

    python -m bench.linker [--data-root data]     # bench/results/chat-linker.{json,md}

Two sets, both with known answers:

- **hand-written chat lines** (``bench/linker/lines.json``): the issue's examples and others like them, everyday
  words that are titles ("a scary movie", "something big", "a date night movie") and titles written every way
  (lower case, with the year, quoted, opening a sentence). An expected movie is ``Title (Year)`` or, where ReDial
  lists the title under several years, ``Title``.
- **the first 30 validation conversations** (``valid_data.json`` of the built data): every utterance with each
  ``@<movieId>`` written out as its title without the year, as typed (``as titled``) and all in lower case
  (``lower case``); the expected movies are the utterance's own.

A link is correct when it names an expected movie (the same title, and the same year where the answer gives one);
precision = correct links / links, recall = expected movies linked / expected movies.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from bench.redial import RESULTS, ROOT, require_built_data, write_report
from crslab_c2crs.data.layout import redial_dir
from crslab_c2crs.data.movies import Movie, load_movies, title_key
from crslab_c2crs.data.tokenize import movie_id, tokenize
from crslab_c2crs.interactive.linker import MovieLinker

LINES = ROOT / "bench" / "linker" / "lines.json"
STEM = RESULTS / "chat-linker"
VALID_CONVERSATIONS = 30
ANSWER = re.compile(r"^(.*?)(?: \((\d{4})\))?$")
Case = Tuple[List[str], List[Tuple[str, Optional[int]]]]  # tokens, expected (title key, year or None)


def expected(answer: str) -> Tuple[str, Optional[int]]:
    """``"Big (1988)"`` -> ``("big", 1988)``; ``"Frozen"`` -> ``("frozen", None)``."""
    title, year = ANSWER.match(answer).groups()
    return title_key(title), int(year) if year else None


def matches(movie: Movie, answer: Tuple[str, Optional[int]]) -> bool:
    return title_key(movie.title) == answer[0] and (answer[1] is None or movie.year == answer[1])


def score(linker: MovieLinker, cases: Iterable[Case]) -> Dict[str, float]:
    """Links, correct links, expected movies and those found, with precision, recall and F1, over ``cases``."""
    links = correct = wanted = found = 0
    for tokens, answers in cases:
        linked = [match.movie for match in linker.link(tokens)]
        links += len(linked)
        correct += sum(any(matches(movie, answer) for answer in answers) for movie in linked)
        wanted += len(answers)
        found += sum(any(matches(movie, answer) for movie in linked) for answer in answers)
    precision = correct / links if links else 1.0
    recall = found / wanted if wanted else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"links": links, "correct": correct, "expected": wanted, "found": found, "precision": precision,
            "recall": recall, "f1": f1}


def chat_lines(path: Path = LINES) -> List[Case]:
    return [(tokenize(line["text"]), [expected(answer) for answer in line["movies"]])
            for line in json.loads(path.read_text(encoding="utf-8"))]


def valid_utterances(dialogs: Sequence[Dict[str, Any]], movies: Dict[int, Movie], lower: bool) -> List[Case]:
    """Every utterance of ``dialogs`` with its movies written out as titles without the year."""
    cases = []
    for conversation in dialogs:
        for utterance in conversation["dialog"]:
            tokens, answers = [], []
            for token in utterance["text"]:
                movie = movies.get(movie_id(token))
                if movie is None:
                    tokens.append(token)
                    continue
                tokens += tokenize(movie.title)
                answers.append((title_key(movie.title), movie.year))
            cases.append(([token.lower() for token in tokens] if lower else tokens, answers))
    return cases


def linkers(movies: Sequence[Movie]) -> Dict[str, MovieLinker]:
    """The chat's linker, and the same without the everyday-title rule (no word counts as everyday)."""
    return {"everyday-title rule": MovieLinker(movies),
            "without it": MovieLinker(movies, everyday_word=lambda _: False)}


def run(data_root: str) -> Dict[str, Any]:
    folder = redial_dir(Path(data_root))
    movies = load_movies(str(folder))
    by_id = {movie.movie_id: movie for movie in movies}
    dialogs = json.loads((folder / "valid_data.json").read_text(encoding="utf-8"))[:VALID_CONVERSATIONS]
    sets = {"hand-written chat lines": chat_lines(),
            "30 valid conversations, as titled": valid_utterances(dialogs, by_id, lower=False),
            "30 valid conversations, lower case": valid_utterances(dialogs, by_id, lower=True)}
    return {name: {setting: score(linker, cases) for setting, linker in linkers(movies).items()}
            for name, cases in sets.items()}


def table(report: Optional[Dict[str, Any]] = None) -> str:
    """The report's table (by default the committed one's, for docs/chat.md's cog block)."""
    report = report or json.loads(STEM.with_suffix(".json").read_text(encoding="utf-8"))
    lines = ["| set | linker | links | correct | expected | found | precision | recall | F1 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, settings in report["sets"].items():
        for setting, row in settings.items():
            lines.append(f"| {name} | {setting} | {row['links']} | {row['correct']} | {row['expected']} | "
                         f"{row['found']} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} |")
    return "\n".join(lines)


def markdown(report: Dict[str, Any], commit: str) -> str:
    return "\n".join(["# The chat's movie linker: precision and recall", "",
                      f"`python -m bench.linker` at `{commit}`; how the sets are made: `bench/linker.py`.", "",
                      table(report), ""])


def main(argv: Optional[List[str]] = None) -> int:
    from bench.redial import git_commit

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT / "data"))
    args = parser.parse_args(argv)
    require_built_data(parser, args.data_root)
    report = {"git_commit": git_commit(), "sets": run(args.data_root)}
    write_report(STEM, report, markdown(report, report["git_commit"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
