"""The linker on hand-checked utterances: every expected link, and nothing else (precision 1 on these)."""
import pytest

from crslab_c2crs.data.linking import EntityLinker, entity_label, kg_candidates, pieces
from crslab_c2crs.data.tokenize import tokenize
from tests.data.tiny_raw import CONCEPTS, STOPWORDS, entity_ids, movie_id, uri


@pytest.fixture(scope="module")
def linker():
    entity2id = entity_ids()
    # every entity is a candidate here (the KG restriction is tested separately)
    return EntityLinker(entity2id, {idx: 1 for idx in entity2id.values()}, set(STOPWORDS), set(CONCEPTS))


HAND_CHECKED = [
    ("I love tom hanks", [("tom hanks", "Tom_Hanks")]),
    ("Anything with Meryl Strep ?", [("Meryl Strep", "Meryl_Streep")]),  # typo: fuzzy match, ratio 95.7
    ("I am a big fan of it", []),  # common words in lower case: not the film Big Fan
    ("Did you see Big Fan ?", [("Big Fan", "Big_Fan")]),
    ("Will Smith is great", [("Will Smith", "Will_Smith")]),
    ("I will smith it", []),
    ("I like horror and comedies", [("horror", "Horror_film"), ("comedies", "Comedy_film")]),
    ("the james family", []),  # not Theo James: no fuzzy match through a leading article
    ("The Shining was scary", [("The Shining", "The_Shining")]),
    ("bye , see you", []),
]


@pytest.mark.parametrize("text,expected", HAND_CHECKED)
def test_hand_checked_links(linker, text, expected):
    tokens = tokenize(text)
    got = [(" ".join(tokens[link.start:link.end]), link.entity) for link in linker.link(tokens)]
    assert got == [(surface, uri(label)) for surface, label in expected]


def test_precision_on_hand_checked_set(linker):
    tp = fp = 0
    for text, expected in HAND_CHECKED:
        tokens = tokenize(text)
        gold = {uri(label) for _surface, label in expected}
        for link in linker.link(tokens):
            tp += link.entity in gold
            fp += link.entity not in gold
    assert tp == 7 and fp == 0


def test_movie_tokens_and_at_mentioned_entities_are_not_linked_again(linker):
    tokens = tokenize(f"@{movie_id(0)} is Big Fan , a Tom Hanks movie")
    links = linker.link(tokens, exclude=[uri("Big_Fan")])
    assert [link.entity for link in links] == [uri("Tom_Hanks")]
    assert all(not tokens[link.start].startswith("@") for link in links)


def test_labels_and_pieces():
    assert entity_label("<http://dbpedia.org/resource/Thriller_(genre)>") == "Thriller"
    assert entity_label("<http://dbpedia.org/resource/Robert_Downey,_Jr.>") == "Robert Downey, Jr."
    assert entity_label("12345") is None
    assert pieces("Zoë Kravitz") == ["zoe", "kravitz"]


def test_kg_candidates_are_movies_and_their_neighbours():
    subkg = {"1": [[69, 5], [185, 1]], "7": [[69, 8]]}
    assert kg_candidates(subkg, [1]) == {1: 2, 5: 1}
