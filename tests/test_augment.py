"""Name swapping (charnn.augment): what counts as a name, what a swap rewrites, and the trainer's use of it."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from charnn import train
from charnn.augment import NameChain, NameSwapper, find_names
from charnn.config import Config, ConfigError
from charnn.vocab import Vocab
from clihelp import assert_user_error, charnn, write_corpus

SCENE = """ROMEO:
Is the day so young? Good morrow, Benvolio.

BENVOLIO:
But new struck nine. Romeo, what sadness lengthens thy hours?

KING RICHARD III:
Speak, Romeo; the king commands.

ROMEO:
Not having that, which, having, makes them short.

LADY CAPULET:
Where is my lady? Romeo, come.

"""
ALPHABET = "".join(sorted(set(SCENE + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")))


def test_names_are_capital_heading_words_never_used_in_lower_case():
    assert find_names(SCENE) == ["BENVOLIO", "CAPULET", "RICHARD", "ROMEO"]   # not KING (the king), III, LADY (my lady)
    assert find_names("no headings here.\nJust: prose, and ROMEO in capitals.\n") == []
    assert find_names("ROMEO:\nromeo is a word here.\n") == []


def test_chain_draws_names_of_the_asked_length():
    for K in (0.0, 20.0):
        chain = NameChain.fit(["ROMEO", "BENVOLIO", "CAPULET"], ["would", "thou", "wert"], K=K)
        rng = np.random.default_rng(0)
        for n in (1, 4, 9, 15):
            name = chain.draw(n, rng)
            assert len(name) == n and re.fullmatch(r"[A-Z]+", name)
        assert chain.draw(6, np.random.default_rng(3)) == chain.draw(6, np.random.default_rng(3))
        allowed = np.array([c in "AEIOUR" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"])
        assert set(chain.draw(30, rng, allowed)) <= set("AEIOUR")


def test_the_unsmoothed_chain_only_repeats_the_names_letter_pairs():
    chain = NameChain.fit(["ROMEO", "BENVOLIO", "CAPULET"])
    assert chain.probs("RO")[ord("M") - 65] == 1.0                 # "RO" is followed by M, always
    assert chain.probs("XO")[ord("M") - 65] == pytest.approx(chain.probs("O")[ord("M") - 65])  # back-off
    assert chain.probs("O")[ord("Z") - 65] == 0.0
    names = {chain.draw(5, np.random.default_rng(s)) for s in range(20)}
    assert all(set(n) <= set("ROMEBNVLICAPUT") for n in names)


def test_the_smoothed_chain_gives_every_letter_a_chance_and_learns_from_the_words():
    chain = NameChain.fit(["ROMEO", "BENVOLIO", "CAPULET"], ["would", "thou", "wert"], K=20.0)
    for context in ("", "R", "RO", "BENV", "ZQ"):            # seen, unseen and empty contexts
        p = chain.probs(context)
        assert p.shape == (26,) and p.min() > 0 and p.sum() == pytest.approx(1.0)
    # interpolation: a pair seen often outweighs the lower orders, an unseen one backs off to them
    assert chain.probs("RO")[ord("M") - 65] > 0.1 and chain.probs("QX")[ord("E") - 65] == chain.probs("X")[ord("E") - 65]
    assert chain.probs("TH")[ord("O") - 65] > chain.probs("TH")[ord("Z") - 65] * 5      # "thou"


def test_the_smoothed_chain_spells_held_out_names_better():
    """Why the names-and-words model exists (module docstring), on made-up but plausible data."""
    names = ["ROSALIND", "ORLANDO", "CELIA", "OLIVER", "ADAM", "CORIN", "SILVIUS", "PHEBE", "AUDREY", "JAQUES"]
    words = ["the", "and", "love", "sister", "forest", "banished", "brother", "duke", "shepherd", "court",
             "lord", "melancholy", "fool", "wrestler", "orchard", "marriage", "country", "cousin"]
    held_out = ["DUKE", "FREDERICK", "CHARLES", "DENNIS", "AMIENS", "WILLIAM"]

    def nats(chain: NameChain) -> float:
        with np.errstate(divide="ignore"):                      # log 0: the unsmoothed chain's impossible pairs
            return float(np.mean([-np.log(chain.probs(n[:i])[ord(n[i]) - 65]) for n in held_out for i in range(len(n))]))
    assert nats(NameChain.fit(names, words, K=20.0)) < nats(NameChain.fit(names, K=20.0)) < np.log(26) + 0.5
    assert nats(NameChain.fit(names, words, K=20.0)) < np.log(26)
    assert nats(NameChain.fit(names)) == np.inf                  # an impossible pair: what the network learnt


def test_name_swap_words_switches_the_generator(tmp_path):
    vocab = Vocab.from_text(ALPHABET)
    plain = NameSwapper(SCENE * 3, vocab, p=1.0, segment=len(SCENE))
    wordy = NameSwapper(SCENE * 3, vocab, p=1.0, segment=len(SCENE), words=True)
    assert plain.chain.probs("RO")[ord("M") - 65] == 1.0 and wordy.chain.probs("RO").min() > 0
    assert Config(name_swap=0.5, name_swap_words=True).name_swap_words
    with pytest.raises(ConfigError, match="name-swap-words"):
        Config(name_swap_words="yes")
    corpus = write_corpus(tmp_path, 4000)
    ok = charnn("train", "--data", corpus, "--hidden-size", "8", "--batch-size", "2", "--max-len", "10",
                "--max-steps", "3", "--no-progress", "--out", tmp_path / "r", "--name-swap", "0.5", "--name-swap-words")
    assert ok.rc == 0, ok.err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["config"]["name_swap_words"] is True


def test_swaps_rewrite_every_occurrence_of_a_name_alike_and_nothing_else():
    vocab = Vocab.from_text(ALPHABET)
    text = SCENE * 3
    sw = NameSwapper(text, vocab, p=1.0, segment=len(SCENE))
    out = vocab.decode(sw.epoch_ids(np.random.default_rng(1)))
    assert len(out) == len(text)
    for k in range(3):                                  # each segment is one copy of the scene
        seg, orig = out[k * len(SCENE):(k + 1) * len(SCENE)], text[k * len(SCENE):(k + 1) * len(SCENE)]
        romeo_upper = [seg[m.start():m.end()] for m in re.finditer(r"\bROMEO\b", orig)]
        romeo_cap = [seg[m.start():m.end()] for m in re.finditer(r"\bRomeo\b", orig)]
        assert len(set(romeo_upper)) == 1 and romeo_upper[0] != "ROMEO"           # one consistent new name
        assert romeo_cap == [romeo_upper[0].capitalize()] * len(romeo_cap)         # in both cases
        # everything that is not a name occurrence is untouched
        mask = np.ones(len(orig), bool)
        for m in re.finditer(r"\b(ROMEO|Romeo|BENVOLIO|Benvolio|CAPULET|RICHARD)\b", orig):
            mask[m.start():m.end()] = False
        assert "".join(c for c, keep in zip(seg, mask) if keep) == "".join(c for c, keep in zip(orig, mask) if keep)
        assert "KING" in seg and "LADY" in seg and "the king" in seg
    # segments draw their own names
    firsts = {out[k * len(SCENE):k * len(SCENE) + 5] for k in range(3)}
    assert len(firsts) > 1


def test_probability_zero_or_no_names_leaves_the_text_alone_and_draws_are_reproducible():
    vocab = Vocab.from_text(ALPHABET)
    sw0 = NameSwapper(SCENE, vocab, p=0.0)
    assert sw0.epoch_ids(np.random.default_rng(0)) is sw0.ids
    prose = "plain prose without any speaker headings at all. " * 20
    swp = NameSwapper(prose, Vocab.from_text(ALPHABET), p=1.0)
    np.testing.assert_array_equal(swp.epoch_ids(np.random.default_rng(0)), Vocab.from_text(ALPHABET).encode(prose))
    sw = NameSwapper(SCENE * 4, vocab, p=0.5, segment=100)
    a, b = sw.epoch_ids(np.random.default_rng(7)), sw.epoch_ids(np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    changed = [(sw.epoch_ids(np.random.default_rng(s)) != sw.ids).any() for s in range(10)]
    assert any(changed) and not all((sw.epoch_ids(np.random.default_rng(s)) != sw.ids).sum() == 0 for s in range(10))
    with pytest.raises(ValueError):
        NameSwapper(SCENE, vocab, p=1.5)


def small_cfg(**kw) -> Config:
    base = dict(cell="gru", layers=1, hidden_size=12, batch_size=2, max_len=20, epochs=3, lr=3e-3,
                dtype="float64", sample_length=10, log_every=4, name_swap=0.5)
    return Config(**{**base, **kw})


def test_trainer_swaps_per_epoch_and_resumes_exactly(tmp_path):
    text = SCENE * 8
    straight = train.train(small_cfg(), tmp_path / "a", text=text, progress=False, log=None)
    train.train(small_cfg(epochs=1), tmp_path / "b", text=text, progress=False, log=None)
    resumed = train.resume(tmp_path / "b", {"epochs": 3}, text=text, progress=False, log=None)
    assert np.isfinite(straight.val_loss) and resumed.val_loss == straight.val_loss
    plain = train.train(small_cfg(name_swap=0.0), tmp_path / "c", text=text, progress=False, log=None)
    assert plain.val_loss != straight.val_loss
    saved = json.loads((tmp_path / "a" / "config.json").read_text())["config"]
    assert saved["name_swap"] == 0.5


def test_the_epochs_text_differs_between_epochs_but_keeps_its_length():
    from charnn.corpus import Corpus
    tr = train.Trainer(small_cfg(name_swap=1.0), Corpus.from_text(SCENE * 8), progress=False, log=None)
    original = tr.swapper.ids
    tr.start_epoch(0)
    e0 = tr.batches.ids.copy()
    tr.start_epoch(1)
    e1 = tr.batches.ids.copy()
    assert len(e0) == len(e1) == len(original)
    assert (e0 != original).any() and (e1 != e0).any()
    tr.start_epoch(0)
    np.testing.assert_array_equal(tr.batches.ids, e0)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), True])
def test_bad_probabilities_are_refused(p):
    with pytest.raises(ConfigError, match="name-swap"):
        small_cfg(name_swap=p)


def test_cli_flag(tmp_path):
    corpus = write_corpus(tmp_path, 4000)
    small = ["--data", corpus, "--hidden-size", "8", "--batch-size", "2", "--max-len", "10", "--max-steps", "3",
             "--no-progress"]
    ok = charnn("train", *small, "--out", tmp_path / "r", "--name-swap", "0.3")
    assert ok.rc == 0, ok.err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["config"]["name_swap"] == 0.3
    assert_user_error(charnn("train", *small, "--out", tmp_path / "s", "--name-swap", "2"), "name-swap")
    assert not (tmp_path / "s").exists()
