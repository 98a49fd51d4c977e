"""Sender allow-list of the MLLP listener: peer address / network and MSH-3 / MSH-4 (HL7 v2.5.1 §2.14.9)."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
ANY = "*"


@dataclass(frozen=True)
class Sender:
    """One allowed sender: MSH-3 sending application and MSH-4 sending facility (HD-1 namespace ids,
    ``*`` for any) from an address in ``network`` (None: any address)."""

    application: str = ANY
    facility: str = ANY
    network: Optional[Network] = None

    @classmethod
    def parse(cls, text: str) -> "Sender":
        """``NETWORK``, ``APP^FACILITY`` or ``APP^FACILITY@NETWORK`` (network: an address or CIDR block)."""
        text = text.strip()
        names, at, net = text.rpartition("@")
        if not at:
            try:
                return cls(network=ipaddress.ip_network(text, strict=False))
            except ValueError:
                names, net = text, ""
        app, _, facility = names.partition("^")
        try:
            network = ipaddress.ip_network(net, strict=False) if net else None
        except ValueError:
            raise ValueError(f"allowed MLLP sender {text!r}: {net!r} is not an address or network") from None
        return cls(app.strip() or ANY, facility.strip() or ANY, network)

    def allows(self, address: str, application: str, facility: str) -> bool:
        if self.network is not None and not _in(address, self.network):
            return False
        return self.application in (ANY, application) and self.facility in (ANY, facility)


def _in(address: str, network: Network) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d from a dual-stack socket
        ip = ip.ipv4_mapped
    return ip in network


class SenderPolicy:
    """Who may send: any sender when the list is empty, else one that an entry allows."""

    def __init__(self, entries: tuple[str, ...] | list[str] = ()):
        self.senders = tuple(Sender.parse(e) for e in entries if e.strip())

    def allows(self, address: Optional[str], application: str, facility: str) -> bool:
        if not self.senders:
            return True
        return any(s.allows(address or "", application, facility) for s in self.senders)

    def __bool__(self) -> bool:
        return bool(self.senders)
