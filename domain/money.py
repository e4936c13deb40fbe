"""Money is an integer number of fen inside; yuan strings with two places outside."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from domain.errors import InvalidAmount

FEN_PER_YUAN = 100
_YUAN_TEXT = re.compile(r"^-?\d{1,15}(\.\d{1,2})?$")


def yuan_text_to_fen(text: str) -> int:
    """Parse a yuan amount written with at most two decimals ("12.3", "-0.05") into fen.

    Only the plain decimal notation is accepted: no exponent, no thousands separator,
    no more than two decimals. This is the single entry of money into the system.
    """
    if not isinstance(text, str) or not _YUAN_TEXT.match(text.strip()):
        raise InvalidAmount(f"amount {text!r} must be a decimal number with at most two decimals")
    try:
        fen = Decimal(text.strip()) * FEN_PER_YUAN
    except InvalidOperation as error:  # pragma: no cover - the regex admits only digits
        raise InvalidAmount(f"amount {text!r} is not a number") from error
    assert fen == fen.to_integral_value(), fen
    return int(fen)


def fen_to_yuan_text(amount_fen: int) -> str:
    """Format fen as a yuan string with exactly two decimals: 12345 -> "123.45"."""
    assert isinstance(amount_fen, int) and not isinstance(amount_fen, bool), amount_fen
    sign = "-" if amount_fen < 0 else ""
    whole, fen = divmod(abs(amount_fen), FEN_PER_YUAN)
    return f"{sign}{whole}.{fen:02d}"


def require_positive(amount_fen: int, what: str = "amount") -> None:
    if amount_fen <= 0:
        raise InvalidAmount(f"{what} must be greater than zero")
