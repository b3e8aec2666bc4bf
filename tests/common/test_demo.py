from decimal import Decimal

import pytest
from django.core.management import CommandError

from common.demo import int_in_range, rate


@pytest.mark.parametrize(("value", "low", "high"), [(0, 0, None), (7, 1, 7), (10**12, 0, None)])
def test_a_whole_number_in_range_is_taken_as_it_is(value, low, high):
    assert int_in_range(value, name="--n", low=low, high=high) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "--n must be a whole number, not True."),
        ("3", "--n must be a whole number, not '3'."),
        (1.0, "--n must be a whole number, not 1.0."),
        (0, "--n must be at least 1, not 0."),
        (1001, "--n must be at most 1,000, not 1,001."),
    ],
)
def test_a_number_out_of_range_or_not_whole_is_refused(value, message):
    with pytest.raises(CommandError) as refused:
        int_in_range(value, name="--n", low=1, high=1000)
    assert str(refused.value) == message


@pytest.mark.parametrize(("value", "expected"), [("0", "0"), ("1", "1"), ("0.25", "0.25"), (0.5, "0.5")])
def test_a_rate_from_0_to_1_is_taken_as_a_decimal(value, expected):
    assert rate(value, name="--r", places=2) == Decimal(expected)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "--r must be a number, not 'abc'."),
        ("-0.1", "--r must be between 0 and 1, not -0.1."),
        ("inf", "--r must be between 0 and 1, not inf."),
        ("0.125", "--r may have at most 2 decimal places, not 0.125."),
    ],
)
def test_a_rate_out_of_range_or_too_precise_is_refused(value, message):
    with pytest.raises(CommandError) as refused:
        rate(value, name="--r", places=2)
    assert str(refused.value) == message
