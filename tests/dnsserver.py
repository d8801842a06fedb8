"""A real DNS server on 127.0.0.1 (dnslib), UDP and TCP on one port, answering from a
zone the test writes: {name: [(type, value), ...]}; "SERVFAIL" or "TIMEOUT" as a
name's whole entry make it fail that way. Over UDP an answer longer than 512 bytes is
truncated (as a server without EDNS does), so the client must ask again over TCP.
"""

from __future__ import annotations

import socket
import time
from types import TracebackType
from typing import Any

from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import DNSHandler, DNSLogger, DNSServer

Zone = dict[str, Any]


class _Handler(DNSHandler):  # type: ignore[misc]
    """Over UDP, an answer over 512 bytes goes out empty with TC set, its question kept."""

    def get_reply(self, data: bytes) -> bytes:
        request = DNSRecord.parse(data)
        reply = self.server.resolver.resolve(request, self)
        packed: bytes = reply.pack()
        if self.protocol == "udp" and len(packed) > 512:
            short = request.reply()
            short.header.tc = 1
            packed = short.pack()
        return packed


class _Resolver:
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.asked: list[tuple[str, str]] = []

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        kind = QTYPE[request.q.qtype]
        self.asked.append((name, kind))
        entry = self.zone.get(name)
        if entry == "SERVFAIL":
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if entry == "TIMEOUT":
            time.sleep(1.5)
            return reply
        if entry is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for rtype, value in entry:
            if rtype != kind:
                continue
            if rtype == "TXT":
                chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
                text = " ".join('"' + c.replace('"', '\\"') + '"' for c in chunks)
                reply.add_answer(*RR.fromZone(f"{name}. 60 TXT {text}"))
            else:
                reply.add_answer(*RR.fromZone(f"{name}. 60 {rtype} {value}"))
        return reply


class DnsServer:
    """Serve zone on 127.0.0.1:port over UDP and (unless tcp=False) TCP."""

    def __init__(self, zone: Zone, tcp: bool = True) -> None:
        self.resolver = _Resolver(zone)
        self.tcp = tcp
        self.servers: list[DNSServer] = []
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> DnsServer:
        quiet = DNSLogger(log="-request,-reply,-truncated,-error", logf=lambda _: None)
        for _ in range(20):
            udp = DNSServer(self.resolver, "127.0.0.1", 0, logger=quiet, handler=_Handler)
            port = udp.server.server_address[1]
            try:
                tcp = (
                    DNSServer(self.resolver, "127.0.0.1", port, tcp=True, logger=quiet)
                    if self.tcp
                    else None
                )
            except OSError:
                udp.server.server_close()
                continue
            self.port = port
            self.servers = [udp, *([tcp] if tcp else [])]
            break
        else:
            raise OSError("no free port for UDP and TCP at once")
        if not self.tcp:
            # Nothing listens on the TCP port: a client's TCP retry is refused.
            probe = socket.socket()
            probe.close()
        for server in self.servers:
            server.start_thread()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for server in self.servers:
            server.stop()
            server.server.server_close()
