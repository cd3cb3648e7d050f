"""core.config: the fast-mode and offline switches read yes/no words, or say why not."""

from __future__ import annotations

import pytest

from course_utils.core import config


@pytest.mark.parametrize("value", ["1", "true", "True", "yes", "on", "y", "Y", " t "])
def test_true_words_turn_fast_mode_on(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("COURSE_FAST", value)
    assert config.fast_mode() is True
    assert config.pick(1000, 10) == 10


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off", "n", "F"])
def test_false_words_turn_fast_mode_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("COURSE_FAST", value)
    assert config.fast_mode() is False


def test_unset_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COURSE_FAST", raising=False)
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    assert config.fast_mode() is False and config.offline() is False


@pytest.mark.parametrize("name", ["COURSE_FAST", "COURSE_OFFLINE"])
@pytest.mark.parametrize("value", ["maybe", "2", "fast", "yes please"])
def test_other_words_are_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    read = config.fast_mode if name == "COURSE_FAST" else config.offline
    with pytest.raises(ValueError, match=f"{name}={value!r} is not a yes/no value"):
        read()
