"""Learning-rate schedules (charnn.train.schedule) and their config fields."""
import math

import pytest

from charnn.train.config import Config, ConfigError
from charnn.train.schedule import lr_at


def test_constant_and_warmup():
    assert [lr_at(s, 1.0) for s in range(3)] == [1.0, 1.0, 1.0]
    assert [lr_at(s, 1.0, warmup_steps=4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_step_decay_like_char_rnn():
    lrs = [lr_at(s, 2.0, schedule="step", decay=0.5, decay_every=10, decay_after=20) for s in range(45)]
    assert lrs[0] == lrs[29] == 2.0          # no decay before `decay_after`, then one per `decay_every`
    assert lrs[30] == lrs[39] == 1.0 and lrs[40] == 0.5


def test_cosine_with_warmup_and_floor():
    f = lambda s: lr_at(s, 1.0, schedule="cosine", warmup_steps=10, total_steps=110, min_lr=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1)
    assert f(500) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(10, 120))
    assert lr_at(50, 1.0, schedule="cosine", total_steps=100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))


def test_unknown_schedule():
    with pytest.raises(ValueError, match="schedule"):
        lr_at(0, 1.0, schedule="linear")


def test_config_fields():
    c = Config(cell="gru", layers=3, dropout=0.25, lr_schedule="cosine", warmup_steps=100)
    assert Config.from_dict(c.to_dict()) == c
    assert Config().cell == "rnn" and Config().layers == 1 and Config().dropout == 0.0
    for bad in (dict(cell="tcn"), dict(layers=0), dict(dropout=1.0), dict(dropout=-0.1),
                dict(lr_schedule="linear"), dict(warmup_steps=-1), dict(lr_decay=0.0),
                dict(lr_decay_every=0.0), dict(min_lr=1.0), dict(eval_streams=0)):
        with pytest.raises(ConfigError):
            Config(**bad)


def test_cosine_progress_given_directly_overrides_the_step_count():
    """A time budget (Config.max_minutes) passes the share of the time spent; warm-up still counts steps."""
    f = lambda s, p: lr_at(s, 1.0, schedule="cosine", warmup_steps=10, total_steps=110, min_lr=0.1, progress=p)
    assert f(3, 0.9) == pytest.approx(0.4)                       # warm-up: (3 + 1) / 10, whatever the time
    assert f(50, 0.0) == pytest.approx(1.0) and f(50, 0.5) == pytest.approx(0.55) and f(50, 1.0) == pytest.approx(0.1)
    assert f(50, 7.0) == pytest.approx(0.1) and f(50, -1.0) == pytest.approx(1.0)     # clipped to [0, 1]
    assert lr_at(50, 1.0, schedule="constant", progress=0.5) == 1.0


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "30"])
def test_max_minutes_must_be_a_finite_number_at_least_zero(bad):
    with pytest.raises(ConfigError, match="max-minutes"):
        Config(max_minutes=bad)
    assert Config(max_minutes=0.5).max_minutes == 0.5 and Config().max_minutes == 0.0
