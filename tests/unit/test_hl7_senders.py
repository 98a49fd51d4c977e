"""MLLP sender allow-list entries: NETWORK, APP^FACILITY, APP^FACILITY@NETWORK (MSH-3 / MSH-4)."""
from __future__ import annotations

import pytest

from dacs_fhir.hl7v2.senders import SenderPolicy


def test_empty_list_allows_any_sender():
    assert SenderPolicy(()).allows("203.0.113.9", "ANY", "WHERE")
    assert not SenderPolicy(())


@pytest.mark.parametrize("address, app, facility, allowed", [
    ("10.1.2.3", "RIS", "HOSP", True),  # RIS^HOSP@10.1.0.0/16
    ("10.2.0.1", "RIS", "HOSP", False),  # right names, wrong network
    ("10.1.2.3", "RIS", "CLINIC", False),
    ("192.168.7.7", "PACS", "ANYWHERE", True),  # a whole network: any names
    ("::ffff:192.168.7.7", "PACS", "X", True),  # IPv4-mapped address of a dual-stack socket
    ("172.16.0.1", "LAB", "HOSP", True),  # LAB^* from anywhere
    ("172.16.0.1", "LABX", "HOSP", False),
    ("not-an-address", "RIS", "HOSP", False),
])
def test_entries(address, app, facility, allowed):
    policy = SenderPolicy(["RIS^HOSP@10.1.0.0/16", "192.168.7.0/24", "LAB^*"])
    assert policy.allows(address, app, facility) is allowed


def test_bad_network_is_refused_at_start():
    with pytest.raises(ValueError, match="not an address or network"):
        SenderPolicy(["RIS^HOSP@10.1.0.0/99"])
