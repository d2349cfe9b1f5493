import json

from crslab_c2crs.data.builder.reviews import build_review_corpus, meta_sentences, movie_sentences, review_sentences
from crslab_c2crs.data.builder.sources import read_movie_meta

META = {"1": {"name": "Pari (1995)", "genre": ["drama", "romance"], "plot": "A girl wanders. She finds answers.",
              "director": ["Dariush Mehrjui"], "writer": [], "star": ["Niki Karimi"]}}
REVIEWS = {"1": [(4, "b.txt", "Rather dull for my taste overall.<br /><br />Too long by half an hour ."),
                 (10, "c.txt", "Simply a wonderful film to watch.<br />I cried at the end of it ."),
                 (10, "a.txt", "The best film of that whole year .")]}
HELPFUL = {"1": ["Towards", "the", "climax", "of"]}


def test_review_sentences_strip_br_and_short_sentences():
    assert list(review_sentences("Great fun for all.<br /><br />Wow!<br />See it &amp; enjoy it now .")) == [
        ["Great", "fun", "for", "all", "."], ["See", "it", "&", "enjoy", "it", "now", "."]]


def test_meta_sentences():
    assert meta_sentences("Pari (1995)", META["1"]) == [
        "Pari (1995) is a drama and romance movie.", "Pari (1995) is directed by Dariush Mehrjui.",
        "Pari (1995) stars Niki Karimi."]


def test_ranking_plot_meta_reviews_by_rating_then_helpful_prefix():
    ranked = movie_sentences("1", META, REVIEWS, HELPFUL)
    sources = [source for source, _tokens in ranked]
    assert sources == ["plot", "plot", "meta", "meta", "meta"] + ["review"] * 5 + ["helpful_prefix"]
    reviews = [" ".join(tokens) for source, tokens in ranked if source == "review"]
    # rating 10 first, ties broken by source name (a.txt before c.txt), rating 4 last
    assert reviews == ["The best film of that whole year .", "Simply a wonderful film to watch .",
                       "I cried at the end of it .", "Rather dull for my taste overall .",
                       "Too long by half an hour ."]


def test_corpus_format_ids_and_determinism():
    token2id = {"__pad__": 0, "__start__": 1, "__end__": 2, "__unk__": 3, "A": 4, "girl": 5}
    first = build_review_corpus({"1": 7, "2": 7}, token2id, META, REVIEWS, HELPFUL)
    second = build_review_corpus({"2": 7, "1": 7}, token2id, META, REVIEWS, HELPFUL)
    assert first == second
    assert first["format_version"] == 1 and list(first["entities"]) == ["7"]
    top = first["entities"]["7"][0]
    assert top == {"source": "plot", "ids": [4, 5, 3, 3]}  # "A girl wanders ." with unknown -> 3
    # movie "2" has no data of its own; entity 7 sentences are not duplicated
    assert len(first["entities"]["7"]) == len(movie_sentences("1", META, REVIEWS, HELPFUL))


def test_movie_meta_stray_character_is_removed_in_memory(tiny_raw_dir):
    path = tiny_raw_dir / "movie_meta" / "cfcrs_id2info.json"
    raw = path.read_text(encoding="utf-8")
    assert '"tt0000001"}f, ' in raw
    meta = read_movie_meta(path)
    assert meta["100001"]["imdb_id"] == "tt0000001"
    assert path.read_text(encoding="utf-8") == raw  # file untouched
    json.dumps(meta)
