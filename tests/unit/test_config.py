"""Settings that are checked when the process starts, and the serving process's collector."""

from __future__ import annotations

import gc

import pytest
from pydantic import ValidationError

from api.app import tune_gc
from ledger.config import Settings


@pytest.mark.parametrize("value", ["1,2", "a,b,c", "0,10,10", "-1,10,10", "1,2,3,4"])
def test_bad_gc_thresholds_refuse_to_start(value):
    with pytest.raises(ValidationError, match="gc_thresholds"):
        Settings(gc_thresholds=value)


def test_tune_gc_sets_thresholds_and_freezes_startup_objects():
    before = gc.get_threshold()
    try:
        tune_gc("40000,15,90")
        assert gc.get_threshold() == (40000, 15, 90)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


# -- the .env file ---------------------------------------------------------------------------

def _env_dir(tmp_path, monkeypatch, dir_mode: int, file_mode: int):
    from adapters.payments.config import PaymentSettings

    monkeypatch.delenv("PREPAID_PAGE_SIZE_DEFAULT", raising=False)
    monkeypatch.delenv("ALIPAY_APP_ID", raising=False)
    folder = tmp_path / "work"
    folder.mkdir()
    env = folder / ".env"
    env.write_text("PREPAID_PAGE_SIZE_DEFAULT=7\nALIPAY_APP_ID=from-the-file\n")
    env.chmod(file_mode)
    folder.chmod(dir_mode)
    monkeypatch.chdir(folder)
    return lambda: (Settings().page_size_default, PaymentSettings().alipay_app_id)


def test_a_private_env_file_in_the_current_directory_is_read(tmp_path, monkeypatch, caplog):
    read = _env_dir(tmp_path, monkeypatch, 0o700, 0o600)
    assert read() == (7, "from-the-file")
    monkeypatch.setenv("PREPAID_PAGE_SIZE_DEFAULT", "9")  # the environment wins
    assert read()[0] == 9
    assert "not reading" not in caplog.text


@pytest.mark.parametrize("dir_mode, file_mode", [(0o700, 0o666), (0o700, 0o620),
                                                 (0o777, 0o600), (0o1777, 0o600)])
def test_an_env_file_others_could_write_is_skipped_with_a_warning(tmp_path, monkeypatch, caplog,
                                                                  dir_mode, file_mode):
    read = _env_dir(tmp_path, monkeypatch, dir_mode, file_mode)
    with caplog.at_level("WARNING"):
        assert read() == (Settings.model_fields["page_size_default"].default, None)
    assert "not reading settings from" in caplog.text and "writable by other users" in caplog.text
