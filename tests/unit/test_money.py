import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidAmount
from domain.money import fen_to_yuan_text, yuan_text_to_fen


@pytest.mark.parametrize("text, fen", [
    ("0", 0), ("1", 100), ("1.5", 150), ("1.05", 105), ("123.45", 12345), ("-0.05", -5),
    ("100000.00", 10_000_000), (" 7.10 ", 710),
])
def test_yuan_text_to_fen(text, fen):
    assert yuan_text_to_fen(text) == fen


@pytest.mark.parametrize("text", ["1.234", "1e3", "1,000", "", "abc", "1.", ".5", "--1", "NaN",
                                  "Infinity", "0x10", "1_000"])
def test_yuan_text_rejects_what_is_not_plain_two_decimal_money(text):
    with pytest.raises(InvalidAmount):
        yuan_text_to_fen(text)


@pytest.mark.parametrize("fen, text", [(0, "0.00"), (5, "0.05"), (-5, "-0.05"), (12345, "123.45"),
                                       (-100, "-1.00"), (10**12, "10000000000.00")])
def test_fen_to_yuan_text(fen, text):
    assert fen_to_yuan_text(fen) == text


@given(st.integers(min_value=-10**15, max_value=10**15))
def test_formatting_and_parsing_round_trip_exactly(fen):
    assert yuan_text_to_fen(fen_to_yuan_text(fen)) == fen
