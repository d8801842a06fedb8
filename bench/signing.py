"""DKIM signing against none, in the same run: a 20-item edition sent to the same
subscribers through the SMTP sink over 2 connections, once unsigned and once signed;
messages per second of each and their ratio (target ≥ 0.9: signing must not make
sending the bottleneck), the CPU time signing adds per message, and dkimpy's own
sign() on the same message for comparison.

    .venv/bin/python bench/signing.py [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
import unittest.mock
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dkim
from _figures import Figure
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from send import NOW, ThreadClock, ours, prepare

from digest.dkim import SIGNED, Signer, load_signer
from digest.mail import MessageTemplate, list_id_header
from digest.store import Store
from digest.tokens import make_token, unsubscribe_url


def measure(quick: bool = False) -> list[Figure]:
    """One run: unsigned and signed sends, and signing alone; return the figures."""
    subscribers = 60 if quick else 3000
    sink = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "send.py"), "--sink"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            (folder / "dkim.pem").write_bytes(pem)
            (folder / "plain").mkdir()
            (folder / "signed").mkdir()
            plain = prepare(folder / "plain", subscribers, port, 2)
            signed = dataclasses.replace(
                prepare(folder / "signed", subscribers, port, 2),
                dkim_key=folder / "dkim.pem",
                dkim_selector="bench",
            )
            off = ours(plain, "2026-11-28")
            with ThreadClock(Signer, "sign") as signing:
                on = ours(signed, "2026-11-28")
            signer = load_signer(signed)
            assert signer is not None
            data = _message(signed)
            count = 20 if quick else 200
            start = time.process_time()
            for _ in range(count):
                signer.sign(data, NOW)
            alone = (time.process_time() - start) / count
            names = [n.encode() for n in SIGNED if n.encode() + b":" in data.lower()]
            theirs = 5 if quick else 40
            start = time.process_time()
            with unittest.mock.patch("time.time", return_value=NOW.timestamp()):
                for _ in range(theirs):
                    dkim.sign(
                        data,
                        b"bench",
                        b"example.com",
                        pem,
                        canonicalize=(b"relaxed", b"relaxed"),
                        include_headers=names + names,
                    )
            dkimpy = (time.process_time() - start) / theirs
    finally:
        sink.kill()
        sink.wait()
    assert off.count == on.count == subscribers
    ms = " ms"
    return [
        Figure(
            f"signed / unsigned send, messages per second ({subscribers:,} subscribers,"
            f" {len(data):,}-byte messages, 2 connections)",
            off.wall / on.wall,
            target=0.9,
            better="higher",
        ),
        Figure("unsigned send, messages per second", off.count / off.wall, "/s", better="higher"),
        Figure("signed send, messages per second", on.count / on.wall, "/s", better="higher"),
        Figure("CPU per message signing, during the send", signing.seconds / on.count * 1e3, ms),
        Figure("CPU per message added by signing: signed less unsigned send",
               (on.cpu - off.cpu) / on.count * 1e3, ms),
        Figure("CPU per message signing, in a loop", alone * 1e3, ms),
        Figure("dkimpy's sign() on the same message / ours, CPU", dkimpy / alone, better="higher"),
    ]  # fmt: skip


def _message(settings: object) -> bytes:
    """Return one personalised message of the bench's edition."""
    from digest.config import Settings

    assert isinstance(settings, Settings)
    with Store(settings.db) as store:
        content = store.editions.content("2026-11-28")
    assert content is not None
    template = MessageTemplate(
        content,
        edition_id="2026-11-28",
        sender=settings.sender,
        list_id=list_id_header(settings.title, settings.list_id, settings.sender),
        base_url=settings.base_url,
        now=NOW,
    )
    url = unsubscribe_url(settings.base_url, make_token("k", settings.list_id, 1))
    return template.personalise("reader1@example.org", "Reader", url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check it runs")
    for figure in measure(parser.parse_args().quick):
        print(figure.line())


if __name__ == "__main__":
    main()
