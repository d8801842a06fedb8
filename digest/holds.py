"""Domains a send holds back: a policy refusal (5.7.x) is about the sender, not the address.

A provider that blocklists the sending IP refuses every address it hosts alike. Counting
that against each address would bounce a whole provider's readers after one bad day, so
the first such refusal holds the rest of that domain's messages back for the run: their
rows are deferred (tried again by a later send) and the send says so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Hold:
    """One domain held back, the reply that caused it, and how many rows wait for it."""

    domain: str
    reply: str
    waiting: int

    def line(self) -> str:
        """Describe the hold for the send's report."""
        rows = "address waits" if self.waiting == 1 else "addresses wait"
        return (
            f"{self.domain} refused the sender ({self.reply}); {self.waiting} {rows}"
            " for a later send, none marked bounced"
        )


def domain_of(address: str) -> str:
    """Return the domain of address, lower case."""
    return address.rpartition("@")[2].lower()


class DomainHolds:
    """The domains held back in one send, shared by its threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._replies: dict[str, str] = {}
        self._waiting: dict[str, int] = {}

    def hold(self, address: str, reply: str) -> None:
        """Hold back address's domain because of reply; the address itself waits too."""
        domain = domain_of(address)
        with self._lock:
            self._replies.setdefault(domain, reply)
            self._waiting[domain] = self._waiting.get(domain, 0) + 1

    def reason(self, address: str) -> str | None:
        """Return why address's domain is held back (counting it as waiting), or None."""
        domain = domain_of(address)
        with self._lock:
            reply = self._replies.get(domain)
            if reply is not None:
                self._waiting[domain] += 1
            return reply

    def holds(self) -> tuple[Hold, ...]:
        """Return every hold of the send, by domain."""
        with self._lock:
            return tuple(Hold(d, r, self._waiting[d]) for d, r in sorted(self._replies.items()))
