"""Log lines: JSON when asked, and masked for anything that looks like a secret."""

from __future__ import annotations

import io
import json
import logging

from adapters.logs import configure_logging, redact, request_id


def test_secrets_are_masked_in_messages():
    cases = {
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX2hlcmU":
            "Authorization: Bearer ***",
        "login with password=hunter2hunter2 failed": "login with password=*** failed",
        '{"api_key": "pk_live_0123456789"}': '{"api_key": ***}',
        "postgresql://prepaid:s3cret@db:5432/prepaid": "postgresql://prepaid:***@db:5432/prepaid",
        "master key 000102030405060708090a0b0c0d0e0f1011121314151617 loaded":
            "master key *** loaded",
        "paid by oUpF8uMuAJO_M2pxb1Q9zNjWeS6o": "paid by oUpF…eS6o",
    }
    for raw, masked in cases.items():
        assert redact(raw) == masked, raw


def test_json_lines_carry_the_request_id_and_text_stays_the_default():
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    try:
        token = request_id.set("req-42")
        logging.getLogger("prepaid.test").warning("token=%s for %s", "abc123abc123", "shop")
        request_id.reset(token)
        logging.getLogger("prepaid.test").info("no request")
    finally:
        configure_logging("text", stream=io.StringIO())
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["request_id"] == "req-42" and first["level"] == "warning"
    assert first["message"] == "token=*** for shop" and first["logger"] == "prepaid.test"
    assert "request_id" not in second and first["time"].endswith("Z")
    text = io.StringIO()
    configure_logging("text", stream=text)
    try:
        logging.getLogger("prepaid.test").info("plain")
    finally:
        configure_logging("text", stream=io.StringIO())
    assert "INFO prepaid.test plain" in text.getvalue()


def test_the_log_format_is_text_or_json():
    import pytest
    from pydantic import ValidationError

    from ledger.config import Settings

    assert Settings(log_format="json").log_format == "json"
    assert Settings().log_format == "text"
    with pytest.raises(ValidationError):
        Settings(log_format="xml")
    # The metrics token never shows in the settings' text.
    assert "s3cret-token" not in repr(Settings(metrics_token="s3cret-token"))
