"""Profiles are data and agree with the domain's list; DL/T 645 control secrets load from a
file and never show themselves; PREPAID_DTU_LISTEN is host:port."""

from __future__ import annotations

import json

import pytest

from adapters.bus_clients import ControlSecrets
from adapters.profiles import PROFILES
from domain.meter import PROFILES as DOMAIN_PROFILES
from ledger.config import Settings


def test_every_profile_names_the_gateway_protocol_the_domain_expects():
    assert {name: p.protocol for name, p in PROFILES.items()} == DOMAIN_PROFILES


def test_relay_actions_are_data_of_each_profile():
    assert PROFILES["dlt645-2007"].relay_codes == {
        "trip": 0x1A, "close": 0x1C, "keep_power_on": 0x3A, "keep_power_off": 0x3B}
    acrel = PROFILES["acrel-ddsy1352"]
    assert acrel.relay_writes["trip"] == (0x0057, (1, 1)) and not acrel.verified
    assert not acrel.keep_power


def test_control_secrets_per_site_overridden_per_meter(tmp_path):
    path = tmp_path / "dlt645.json"
    path.write_text(json.dumps({  # test fixture values
        "sites": {"site-1": {"password_level": 2, "password": "000000",
                             "operator_code": "00000000"}},
        "meters": {"000000000001": {"password_level": 4, "password": "123456",
                                    "operator_code": "01020304"}}}))
    secrets = ControlSecrets.load(str(path))
    assert secrets.for_meter("site-1", "000000000002").password == bytes(3)
    special = secrets.for_meter("site-1", "000000000001")
    assert special.password_level == 4 and special.operator_code == bytes([1, 2, 3, 4])
    assert secrets.for_meter("site-2", "000000000002") is None
    assert "123456" not in repr(secrets) + repr(special)


def test_a_malformed_secrets_file_is_refused(tmp_path):
    path = tmp_path / "dlt645.json"
    path.write_text(json.dumps({"sites": {"s": {"password_level": 2, "password": "00"}}}))
    with pytest.raises(ValueError, match="operator_code"):
        ControlSecrets.load(str(path))


@pytest.mark.parametrize("value", ["9100", "host:", ":9100", "host:port", "h:70000"])
def test_the_dtu_listener_setting_is_host_and_port(value):
    with pytest.raises(ValueError):
        Settings(dtu_listen=value)


def test_the_dtu_listener_setting_parses():
    assert Settings(dtu_listen="0.0.0.0:9100").dtu_listen_address == ("0.0.0.0", 9100)
    assert Settings().dtu_listen_address is None
