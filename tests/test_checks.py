import math
import re
from fractions import Fraction

import numpy as np
import pytest

from fedmarket.checks import integer, is_int, is_number, number
from fedmarket.errors import ConfigError, DataError, FedmarketError, PrivacyError


# --- is_int / is_number -----------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, -3, 10**30])
def test_is_int_accepts_ints(value):
    assert is_int(value) and is_int(value, numpy=True)


@pytest.mark.parametrize("value", [True, False, 2.0, "2", None, np.bool_(True), Fraction(2)])
def test_is_int_refuses_bools_floats_and_text(value):
    assert not is_int(value) and not is_int(value, numpy=True)


def test_numpy_integers_only_when_asked():
    assert not is_int(np.int64(3)) and is_int(np.int64(3), numpy=True)
    assert not is_int(np.uint8(3)) and is_int(np.uint8(3), numpy=True)


@pytest.mark.parametrize("value", [0, 2.5, -1e300, math.nan, math.inf, np.float64(0.5)])
def test_is_number_accepts_ints_and_floats(value):
    assert is_number(value) and is_number(value, numpy=True)


@pytest.mark.parametrize("value", [True, "1.0", None, 1j, [1.0]])
def test_is_number_refuses_bools_and_non_numbers(value):
    assert not is_number(value) and not is_number(value, numpy=True)


def test_numpy_reals_only_when_asked():
    for value in (np.float32(0.5), np.int32(2), Fraction(1, 2)):
        assert not is_number(value) and is_number(value, numpy=True)


# --- integer ----------------------------------------------------------------------------------
def test_integer_returns_a_plain_int():
    assert integer("x", 5) == 5
    value = integer("x", np.int64(7), numpy=True)
    assert value == 7 and type(value) is int


def test_integer_bounds_are_inclusive():
    assert integer("x", 2, at_least=2) == 2
    assert integer("x", 9, at_most=9) == 9
    assert integer("x", 1, at_least=1, at_most=1) == 1
    with pytest.raises(ConfigError):
        integer("x", 1, at_least=2)
    with pytest.raises(ConfigError):
        integer("x", 10, at_most=9)


@pytest.mark.parametrize("value", [True, False, 3.0, "3", None, np.int64(3)])
def test_integer_refuses_what_is_not_an_int(value):
    with pytest.raises(ConfigError):
        integer("x", value)


@pytest.mark.parametrize(
    ("kwargs", "value", "message"),
    [
        ({}, 2.5, "training.epochs must be an integer, got 2.5"),
        ({"at_least": 1}, 0, "training.epochs must be a positive integer, got 0"),
        ({"at_least": 1}, True, "training.epochs must be a positive integer, got True"),
        ({"at_least": 0}, -1, "training.epochs must be an integer >= 0, got -1"),
        ({"at_most": 9}, 10, "training.epochs must be an integer <= 9, got 10"),
        (
            {"at_least": 1, "at_most": 10_000},
            0,
            "training.epochs must be an integer between 1 and 10,000, got 0",
        ),
        (
            {"at_least": 1, "must": "a positive number of retailers"},
            "3",
            "training.epochs must be a positive number of retailers, got '3'",
        ),
    ],
)
def test_integer_message_names_the_setting_the_rule_and_the_value(kwargs, value, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        integer("training.epochs", value, **kwargs)


@pytest.mark.parametrize("error", [DataError, PrivacyError])
def test_integer_raises_the_callers_error_class(error):
    with pytest.raises(error, match="steps must be a positive integer, got 0") as info:
        integer("steps", 0, at_least=1, error=error)
    assert type(info.value) is error


# --- number -----------------------------------------------------------------------------------
def test_number_returns_a_float():
    value = number("x", 3)
    assert value == 3.0 and type(value) is float
    assert type(number("x", np.float32(0.5), numpy=True)) is float


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_number_refuses_nan_and_infinity_even_without_bounds(value):
    with pytest.raises(ConfigError, match="must be a finite number"):
        number("x", value)
    with pytest.raises(ConfigError):
        number("x", value, at_least=0.0)


@pytest.mark.parametrize("value", [True, "0.5", None, np.float32(0.5)])
def test_number_refuses_what_is_not_a_number(value):
    with pytest.raises(ConfigError):
        number("x", value)


def test_number_bounds_at_the_edge():
    assert number("x", 0.0, at_least=0.0) == 0.0
    assert number("x", 1.0, at_most=1.0) == 1.0
    assert number("x", 1e-12, above=0.0) == 1e-12
    assert number("x", 0.999, below=1.0) == 0.999
    for kwargs, value in (
        ({"at_least": 0.0}, -1e-12),
        ({"above": 0.0}, 0.0),
        ({"at_most": 1.0}, 1.0 + 1e-12),
        ({"below": 1.0}, 1.0),
    ):
        with pytest.raises(ConfigError):
            number("x", value, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "value", "message"),
    [
        ({}, "1e-5", "delta must be a finite number, got '1e-5'"),
        ({"above": 0.0}, 0.0, "delta must be a positive finite number, got 0.0"),
        ({"above": 0.5}, 0.5, "delta must be a finite number > 0.5, got 0.5"),
        ({"at_least": 0.0}, -1, "delta must be a finite number >= 0, got -1"),
        ({"below": 1.0}, 1.0, "delta must be a finite number < 1, got 1.0"),
        ({"at_most": 1.0}, 2.0, "delta must be a finite number <= 1, got 2.0"),
        ({"at_least": 0.0, "below": 1.0}, math.nan, "delta must be a number in [0, 1), got nan"),
        ({"above": 0.0, "at_most": 1.0}, 0.0, "delta must be a number in (0, 1], got 0.0"),
        (
            {"above": 0.0, "must": "a mean count > 0"},
            -2.0,
            "delta must be a mean count > 0, got -2.0",
        ),
    ],
)
def test_number_message_names_the_setting_the_rule_and_the_value(kwargs, value, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        number("delta", value, **kwargs)


@pytest.mark.parametrize("error", [DataError, PrivacyError])
def test_number_raises_the_callers_error_class(error):
    with pytest.raises(error, match="rate must be a finite number, got inf") as info:
        number("rate", math.inf, error=error)
    assert type(info.value) is error and isinstance(info.value, FedmarketError)


def test_number_takes_one_bound_per_side():
    with pytest.raises(TypeError, match="one lower bound"):
        number("x", 1.0, at_least=0.0, above=0.0)
    with pytest.raises(TypeError, match="one upper bound"):
        number("x", 1.0, at_most=2.0, below=2.0)
