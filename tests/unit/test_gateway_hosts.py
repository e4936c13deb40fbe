"""Which hosts a gateway may name: loopback, link-local and cloud metadata are refused
unless PREPAID_GATEWAY_ALLOWED_NETWORKS lists them; meter LANs are allowed."""

import pytest

from ledger.config import Settings
from ledger.gateway_hosts import GatewayHostPolicy, GatewayHostRefused, parse_networks

REFUSED = ["127.0.0.1", "127.1", "0x7f000001", "localhost", "LOCALHOST.", "db.localhost",
           "::1", "::ffff:127.0.0.1", "0.0.0.0", "::", "169.254.169.254", "169.254.1.7",
           "fe80::1", "fd00:ec2::254", "100.100.100.200", "metadata.google.internal",
           "metadata", "224.0.0.1"]
ALLOWED = ["10.0.0.11", "172.16.5.1", "192.168.1.20", "fd12:3456::1", "100.64.1.1",
           "8.8.8.8", "gw-01.mall.invalid"]  # a name that does not resolve (yet) is kept


@pytest.mark.parametrize("host", REFUSED)
def test_the_default_refuses_loopback_link_local_and_metadata(host):
    with pytest.raises(GatewayHostRefused):
        GatewayHostPolicy().check(host)


@pytest.mark.parametrize("host", ALLOWED)
def test_meter_networks_stay_allowed(host):
    GatewayHostPolicy().check(host)


def test_an_allowed_network_lets_its_addresses_through_and_nothing_else():
    policy = GatewayHostPolicy(parse_networks("127.0.0.0/8, 169.254.0.0/16"))
    for host in ("127.0.0.1", "localhost", "::ffff:127.0.0.1", "169.254.1.7"):
        policy.check(host)
    for host in ("::1", "0.0.0.0", "fe80::1"):
        with pytest.raises(GatewayHostRefused):
            policy.check(host)
    # A wide link-local allowance does not open the metadata service; naming it does.
    with pytest.raises(GatewayHostRefused):
        policy.check("169.254.169.254")
    GatewayHostPolicy(parse_networks("169.254.169.254/32")).check("169.254.169.254")


def test_the_setting_is_checked_when_read():
    assert Settings(gateway_allowed_networks="127.0.0.0/8,::1/128").gateway_allowed_networks
    with pytest.raises(ValueError):
        Settings(gateway_allowed_networks="127.0.0.0/8,not-a-network")
