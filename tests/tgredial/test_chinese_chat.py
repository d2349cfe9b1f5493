"""The pieces of the Chinese chat: titles in 《》, entity names, and how replies are shown."""
from crslab_c2crs.interactive.chinese import ChineseMovie, EntityNameLinker, TitleLinker, join_tokens

MOVIES = [ChineseMovie(7, 7, "霸王别姬", None), ChineseMovie(9, 9, "星空下的猫", None, ("星星猫",)),
          ChineseMovie(3, 3, "夜车", 1979), ChineseMovie(4, 4, "夜车", 2007)]


def _link(tokens):
    return [(m.start, m.end, m.movie.entity_id, round(m.score)) for m in TitleLinker(MOVIES).link(tokens)]


def test_titles_in_brackets_exact_alias_typo_and_shared_titles():
    tokens = ["我", "喜欢", "《", "霸王", "别", "鸡", "》", "和", "《", "星星", "猫", "》", "，", "《", "夜车", "》"]
    # a typo (one wrong character in four); an alias seen in the dialogs; among equal titles the first (most
    # mentioned) movie
    assert _link(tokens) == [(3, 6, 7, 75), (9, 11, 9, 100), (14, 15, 3, 100)]


def test_no_link_outside_brackets_for_unknown_or_short_fuzzy_titles():
    assert _link(["霸王别姬", "很", "好看"]) == []
    assert _link(["《", "不存在的电影", "》"]) == []
    assert _link(["《", "夜", "》"]) == []  # two characters or fewer must match exactly


def test_display_has_brackets_and_the_year_when_known():
    assert MOVIES[0].display == "《霸王别姬》" and MOVIES[2].display == "《夜车》（1979）"


def test_entity_names_longest_first_without_overlap():
    link = EntityNameLinker(["周星驰", "喜剧", "周星驰电影", "的", "12"])
    assert link(["周星驰", "电影", "的", "喜剧", "12"]) == [(0, 2, "周星驰电影"), (3, 4, "喜剧")]


def test_replies_are_joined_without_spaces_except_between_latin_words():
    assert join_tokens(["我", "喜欢", "Tom", "Hanks", "的", "电影", "2", "部"]) == "我喜欢Tom Hanks的电影2部"
    assert join_tokens([]) == ""
