"""Exact values of the text statistics on handcrafted strings."""
import pytest

from charnn.reproduce import textstats as ts


def test_words_keep_inner_apostrophes_and_casefold():
    assert ts.words("I've seen o'er 'tis ROMEO: x2y -- well-met") == [
        "i've", "seen", "o'er", "tis", "romeo", "x", "y", "well", "met"]
    assert ts.words("1234 ... !") == []


def test_mid_word_capitals_count_only_lower_to_upper_switches():
    # bHarful: H; charHard: H; ROMEO and a sentence start do not count; aBcD: B and D.
    assert ts.mid_word_capitals("bHarful charHard ROMEO: The end. aBcD") == 4
    assert ts.mid_word_capitals("") == 0


def test_text_stats_exact_values():
    text = "the cat the cat sat. The Dog!"   # 29 chars
    train = ts.word_set("the cat sat on a mat")
    s = ts.text_stats(text, train)
    assert s.chars == 29
    assert s.words == 7                     # the cat the cat sat the dog
    assert s.in_train_share == pytest.approx(6 / 7)
    assert s.mid_word_caps == 0
    assert s.mid_word_caps_per_1000 == 0.0
    # bigrams: (the,cat) (cat,the) (the,cat) (cat,sat) (sat,the) (the,dog) -> 5 distinct
    assert s.distinct_bigrams == 5
    assert s.bigrams_per_word == pytest.approx(5 / 7)
    assert s.mean_word_length == pytest.approx((3 + 3 + 3 + 3 + 3 + 3 + 3) / 7)
    assert s.unmatched_pairs == 0


def test_capitals_per_1000_chars_and_word_length():
    s = ts.text_stats("heLlo wOrld")    # 11 chars, 2 mid-word capitals
    assert s.mid_word_caps == 2
    assert s.mid_word_caps_per_1000 == pytest.approx(2000 / 11)
    assert s.mean_word_length == 5.0
    assert s.in_train_share is None       # no training words given
    assert s.distinct_bigrams == 1 and s.bigrams_per_word == 0.5


def test_pair_balance_brackets_and_quotes():
    b = ts.pair_balance('(a (b) c)) [x "q" "r ({')
    assert b["()"] == {"open": 3, "close": 3, "unmatched": 2}  # one stray ')' and one '(' left open
    assert b["[]"] == {"open": 1, "close": 0, "unmatched": 1}
    assert b["{}"] == {"open": 1, "close": 0, "unmatched": 1}
    assert b['"'] == {"open": 2, "close": 1, "unmatched": 1}
    assert b["“”"] == {"open": 0, "close": 0, "unmatched": 0}
    assert ts.text_stats('(a (b) c)) [x "q" "r ({').unmatched_pairs == 5


def test_closing_before_opening_is_unmatched_twice():
    assert ts.pair_balance(")(")["()"] == {"open": 1, "close": 1, "unmatched": 2}
    assert ts.pair_balance("“hi” ‘yo")["“”"]["unmatched"] == 0
    assert ts.pair_balance("“hi” ‘yo")["‘’"]["unmatched"] == 1


def test_empty_text_has_zero_statistics():
    s = ts.text_stats("", frozenset({"a"}))
    assert (s.chars, s.words, s.in_train_share, s.bigrams_per_word, s.mean_word_length) == (0, 0, 0.0, 0.0, 0.0)


def test_word_origins_split_copied_and_new():
    o = ts.word_origins("The cat zorbs the cat. Zorbs!", ts.word_set("the cat sat"))
    assert dict(o.copied) == {"the": 2, "cat": 2}
    assert dict(o.new) == {"zorbs": 2}
    assert o.copied_share == pytest.approx(2 / 3)
    d = o.to_dict()
    assert d["distinct_copied"] == 2 and d["distinct_new"] == 1
    assert d["top_new"] == [("zorbs", 2)]


def test_training_slice_stats_measure_a_slice():
    train = "abc def ghi jkl"
    assert ts.training_slice(train, 7, offset=4) == "def ghi"
    assert ts.training_slice(train, 7, offset=100) == "ghi jkl"   # clamped to fit
    assert ts.training_slice(train, 100) == train
    s = ts.training_slice_stats(train, 7, offset=4, train_words=ts.word_set(train))
    assert (s.chars, s.words, s.in_train_share, s.distinct_bigrams) == (7, 2, 1.0, 1)


def test_to_dict_is_json_ready():
    import json
    d = ts.text_stats("a (b", frozenset({"a"})).to_dict()
    json.dumps(d)
    assert d["unmatched_pairs"] == 1 and d["in_train_share"] == 0.5


def test_line_end_punctuation_share_counts_finished_nonempty_lines():
    # lines: "Hello," (yes) "" (skipped) "no stop" (no) "end.  " (yes, spaces ignored); "tail" unfinished
    assert ts.line_end_punct_share("Hello,\n\nno stop\nend.  \ntail") == 2 / 3
    assert ts.line_end_punct_share("no newline at all") is None
    assert ts.line_end_punct_share("ROMEO:\n") == 1.0


def test_contractions_are_words_with_inner_apostrophes():
    c = ts.contractions("I've said 'tis so; I'll go, I'VE gone o'er")
    assert dict(c) == {"i've": 2, "i'll": 1, "o'er": 1}
