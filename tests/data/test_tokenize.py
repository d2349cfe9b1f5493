from crslab_c2crs.data.tokenize import is_movie_token, split_sentences, tokenize


def test_movie_mention_is_one_token():
    assert tokenize("have you seen @191911 ?") == ["have", "you", "seen", "@191911", "?"]
    assert tokenize("@89034  was pretty good to,") == ["@89034", "was", "pretty", "good", "to", ","]


def test_sentence_final_period_is_split_inside_a_message():
    # word_tokenize(preserve_line=True) alone would keep "it." whole
    assert tokenize("I liked it. Did you?") == ["I", "liked", "it", ".", "Did", "you", "?"]


def test_split_sentences_keeps_initials_together():
    assert split_sentences("Hi there!  How are you? Michael B. Jordan is good.") == [
        "Hi there!", "How are you?", "Michael B. Jordan is good."]
    assert tokenize("actor Michael B. Jordan") == ["actor", "Michael", "B.", "Jordan"]


def test_contractions_like_crslab():
    assert tokenize("I haven't seen it") == ["I", "have", "n't", "seen", "it"]


def test_is_movie_token():
    assert is_movie_token("@123")
    assert not is_movie_token("@")
    assert not is_movie_token("@12a")
