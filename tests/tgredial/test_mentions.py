"""Finding TG-ReDial's movies and entities in an utterance's tokens (the text has no entity markup)."""
from crslab_c2crs.data.tgredial import find_span, plain_title, title_spans, utterance_mentions

TOKENS = ["推荐", "《", "霸王别姬", "》", "和", "《", "星空", "下", "的", "猫", "》", "，", "周星驰", "的", "喜剧"]


def test_plain_title_drops_the_disambiguation_only():
    assert plain_title("边界线（2014年日剧）") == "边界线"
    assert plain_title("金玉良言（电影《金玉良言》（Good Advice ））") == "金玉良言"
    assert plain_title("功夫熊猫2(2011)") == "功夫熊猫2"
    assert plain_title("霸王别姬") == "霸王别姬"
    assert plain_title("（1999）") == "（1999）"


def test_title_spans_are_the_tokens_inside_the_brackets():
    assert title_spans(TOKENS) == [(2, 3), (6, 10)]
    assert title_spans(["《", "》", "《", "a"]) == []


def test_movies_by_title_then_in_order_then_entities():
    movies = [("26615319", 60), ("霸王别姬（1993年陈凯歌执导电影）", 50)]
    entities = [("喜剧", 7), ("周星驰", 8)]
    # 霸王别姬 matches its bracket by title; the Douban id takes the bracket left over
    assert utterance_mentions(TOKENS, movies, entities) == [(2, 3, 50), (6, 10, 60), (12, 13, 8), (14, 15, 7)]


def test_names_without_an_id_keep_the_pairing_but_give_no_mention():
    assert utterance_mentions(TOKENS, [("霸王别姬", None), ("26615319", 60)], []) == [(6, 10, 60)]


def test_an_unbracketed_title_and_a_missing_name_give_what_the_text_holds():
    tokens = ["我", "喜欢", "霸王", "别姬", "和", "教父"]
    assert utterance_mentions(tokens, [("霸王别姬", 5), ("不存在", 6), ("12345", 7)], [("教父", 9)]) == \
        [(2, 4, 5), (5, 6, 9)]


def test_longer_entity_names_are_placed_first_and_spans_never_overlap():
    tokens = ["周星驰", "电影", "和", "周星驰"]
    taken = [False] * 4
    assert find_span(tokens, "周星驰电影", taken) == (0, 2)
    assert utterance_mentions(tokens, [], [("周星驰", 1), ("周星驰电影", 2)]) == [(0, 2, 2), (3, 4, 1)]
    assert find_span(tokens, "", taken) is None
