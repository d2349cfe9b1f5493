"""The jieba tokenizer: cuts into the dataset's vocabulary, keeps Latin words whole, drops whitespace."""
from crslab_c2crs.data.jieba_tokenize import ChineseTokenizer, split_sentences

VOCAB = ["__pad__", "__start__", "__end__", "__unk__", "，", "的", "。", "电影", "喜剧", "一", "部", "这是",
         "周星驰", "最", "感人", "Han", "ks"]


def test_known_words_win_over_jieba_words_the_models_never_saw():
    # jieba's own dictionary keeps "一部" and "喜剧电影", which this vocabulary lacks
    tokens = ChineseTokenizer(VOCAB)("这是周星驰最感人的一部喜剧电影。")
    assert tokens == ["这是", "周星驰", "最", "感人", "的", "一", "部", "喜剧", "电影", "。"]


def test_latin_words_stay_whole_and_whitespace_is_never_a_token():
    tokens = ChineseTokenizer(VOCAB)("我喜欢 Tom  Hanks 的电影\n")
    assert "Hanks" in tokens and "Tom" in tokens
    assert all(token.strip() for token in tokens)


def test_sentences_split_after_end_punctuation_and_line_breaks():
    text = "很好看！我看了三遍。“真的吗？”他问。\n第二段；还有…最后"
    assert split_sentences(text) == ["很好看！", "我看了三遍。", "“真的吗？”他问。", "第二段；", "还有…", "最后"]
    assert split_sentences(" \n \n") == []
