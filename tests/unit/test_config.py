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
