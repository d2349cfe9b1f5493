"""Movie title linking in user messages: @ids, titles with/without year, typos, short titles."""
from crslab_c2crs.data.movies import Movie, split_title
from crslab_c2crs.interactive.linker import MovieLinker

MOVIES = [
    Movie(111, 11, "The Godfather", 1972),
    Movie(222, 22, "Inception", 2010),
    Movie(333, 33, "Up", 2009),
    Movie(444, 44, "The Notebook", 2004),
    Movie(555, 55, "Halloween", 1978),
    Movie(556, 56, "Halloween", 2018),
    Movie(777, 77, "2", 1980),
]
LINKER = MovieLinker(MOVIES)


def titles(text):
    return [(m.movie.title, m.movie.year) for m in LINKER.link(text.split())]


def test_split_title_handles_double_spaces_and_missing_year():
    assert split_title("Headhunter  (2009)") == ("Headhunter", 2009)
    assert split_title("Some Film") == ("Some Film", None)


def test_at_ids_titles_and_typos():
    assert titles("I liked @222 a lot") == [("Inception", 2010)]
    assert titles("I liked the godfather and Incepton") == [("The Godfather", 1972), ("Inception", 2010)]


def test_year_picks_the_right_remake():
    assert titles("have you seen Halloween ( 2018 ) ?") == [("Halloween", 2018)]
    assert titles("have you seen Halloween 1978 ?") == [("Halloween", 1978)]


def test_short_titles_need_exact_capitalised_match():
    assert titles("what is up with you") == []
    assert titles("I loved Up") == [("Up", 2009)]


def test_numbers_are_not_short_titles():
    assert titles("have you seen the godfather 2 ?") == [("The Godfather", 1972)]


def test_nothing_matches_in_unrelated_text():
    assert titles("hello there , I want something funny") == []
    assert LINKER.link([]) == []
