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


EVERYDAY = [Movie(1, 1, "It", 2017), Movie(2, 2, "Training Day", 2001), Movie(3, 3, "Her", 2013),
            Movie(4, 4, "Sister", 2015), Movie(5, 5, "Big", 1988), Movie(6, 6, "Up", 2009),
            Movie(7, 7, "Anything Else", 2003), Movie(8, 8, "Frozen", 2013), Movie(9, 9, "Scary Movie", 2000),
            Movie(10, 10, "The Shining", 1980), Movie(11, 11, "Superbad", 2007)]
EVERYDAY_LINKER = MovieLinker(EVERYDAY)


def everyday_titles(text):
    from crslab_c2crs.data.tokenize import tokenize

    return [m.movie.display for m in EVERYDAY_LINKER.link(tokenize(text))]


def test_everyday_sentences_link_no_movie():
    for text in ("It is raining today", "Her sister loves comedies", "Big fan of Tom Hanks", "Up for anything",
                 "anything else?", "I ate frozen pizza", "I want a scary movie", "something big", "her",
                 "it was good", "I have a big day of training tomorrow"):
        assert everyday_titles(text) == [], text


def test_everyday_titles_link_when_written_as_titles():
    assert everyday_titles("Scary Movie (2000)") == ["Scary Movie (2000)"]
    assert everyday_titles("Big") == ["Big (1988)"]
    assert everyday_titles("Her (2013)") == ["Her (2013)"]
    assert everyday_titles("I saw It last week") == ["It (2017)"]
    assert everyday_titles('I liked "training day" a lot') == ["Training Day (2001)"]
    assert everyday_titles("What about Training Day? Or Anything Else.") == ["Training Day (2001)",
                                                                            "Anything Else (2003)"]


def test_titles_with_a_rarer_word_keep_fuzzy_matching_in_any_case():
    assert everyday_titles("what about a scary movie? i liked the shining") == ["The Shining (1980)"]
    assert everyday_titles("superbad was great") == ["Superbad (2007)"]


def test_a_non_ascii_digit_after_at_is_a_word_not_a_crash():
    from crslab_c2crs.data.tokenize import is_movie_token, movie_id, tokenize

    for text in ("I liked @²", "I liked @٣", "I liked @①"):
        assert everyday_titles(text) == []
        assert all(movie_id(token) is None and not is_movie_token(token) for token in tokenize(text))
    assert movie_id("@222") == 222
