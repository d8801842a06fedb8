"""Where a fetch may connect: the look-up within the fetch's deadline, and which
addresses are not public (loopback, private, link-local and the like)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import TypeAlias

from digest.sources.connection import AddrInfo, Deadline

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
# 100.64.0.0/10 is not "private" to the ipaddress module but is no public address either
# (carrier-grade NAT; some clouds serve instance metadata from it).
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def refusal(address: IPAddress) -> str | None:
    """Return why a fetch may not connect to address ("a loopback address"), or None.

    An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4 address it is.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED, "a shared address"),
    )
    return next((why for hit, why in checks if hit), None)


def literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def look_up(host: str, port: int, deadline: Deadline) -> list[AddrInfo]:
    """Return getaddrinfo's answer for host; the system resolver has no timeout of its
    own, so it runs in a thread that is abandoned when the deadline passes."""
    answer: list[AddrInfo] = []
    if literal(host) is not None:
        flags = socket.AI_NUMERICHOST  # no look-up at all
        answer.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=flags))
        return answer
    failure: list[OSError] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            answer.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as err:
            failure.append(err)
        finally:
            done.set()

    threading.Thread(target=look_up, name=f"resolve {host}", daemon=True).start()
    if not done.wait(deadline.remaining()):
        raise TimeoutError(f"looking up {host}")
    if failure:
        raise failure[0]
    if not answer:
        raise socket.gaierror(socket.EAI_NONAME, "no address")
    return answer
