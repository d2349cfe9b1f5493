"""bench.linker: precision and recall on hand-made links, and the committed chat lines' answers are real movies."""
from pathlib import Path
from types import SimpleNamespace

import pytest

import bench.linker as bench
from crslab_c2crs.data.movies import Movie

MOVIE_LIST = Path(__file__).resolve().parents[1].parent / "shared/data/redial/raw/movies_with_mentions.csv"
BIG, BIG_REMAKE, HER = Movie(1, 11, "Big", 1988), Movie(2, 12, "Big", 2020), Movie(3, 13, "Her", 2013)


class Scripted:
    """A linker whose answer for each message is given."""

    def __init__(self, answers):
        self.answers = answers

    def link(self, tokens):
        return [SimpleNamespace(movie=movie) for movie in self.answers[" ".join(tokens)]]


def test_precision_and_recall_count_links_and_expected_movies():
    cases = [(["a"], [bench.expected("Big (1988)")]),   # linked the wrong Big: a wrong link, a miss
             (["b"], [bench.expected("Her")]),          # any Her is right
             (["c"], [])]                               # a link where none was expected
    result = bench.score(Scripted({"a": [BIG_REMAKE], "b": [HER], "c": [BIG]}), cases)
    assert (result["links"], result["correct"], result["expected"], result["found"]) == (3, 1, 2, 1)
    assert result["precision"] == pytest.approx(1 / 3) and result["recall"] == 0.5


def test_valid_utterances_write_movies_out_as_titles():
    dialogs = [{"dialog": [{"text": ["I", "liked", "@1", "!"]}]}]
    (case,) = bench.valid_utterances(dialogs, {1: BIG}, lower=True)
    assert case == (["i", "liked", "big", "!"], [("big", 1988)])


@pytest.mark.skipif(not MOVIE_LIST.is_file(), reason=f"ReDial's movie list not found at {MOVIE_LIST}")
def test_every_answer_of_the_chat_lines_is_a_redial_movie():
    import csv

    from crslab_c2crs.data.movies import split_title, title_key

    with MOVIE_LIST.open(encoding="utf-8") as handle:
        movies = [split_title(row["movieName"]) for row in csv.DictReader(handle)]
    titles = {(title_key(title), year) for title, year in movies} | {(title_key(title), None) for title, _ in movies}
    answers = [answer for _, expected in bench.chat_lines() for answer in expected]
    assert answers and all(answer in titles for answer in answers)
