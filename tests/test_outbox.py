"""Writing an edition to disk."""

from __future__ import annotations

import email
import os
from email import policy
from pathlib import Path

import pytest
from test_mail import NOW, rendered

from digest.errors import DeliveryError
from digest.mail import build_message
from digest.outbox import write_atomic, write_edition


def test_writes_three_files(tmp_path: Path) -> None:
    """Write digest.html, digest.txt and a parseable digest.eml."""
    r = rendered()
    sample = build_message(r, "d@example.com", "d@example.com", NOW)
    folder = write_edition(r, tmp_path / "out" / "2026-11-28", sample)
    assert (folder / "digest.html").read_text() == r.html
    assert (folder / "digest.txt").read_text() == r.text
    parsed = email.message_from_bytes((folder / "digest.eml").read_bytes(), policy=policy.default)
    assert parsed.defects == []
    assert sorted(p.name for p in folder.iterdir()) == ["digest.eml", "digest.html", "digest.txt"]


def test_unwritable_outbox_names_the_folder(tmp_path: Path) -> None:
    """Name the folder and the setting when the outbox cannot be written."""
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    r = rendered()
    with pytest.raises(DeliveryError, match="DIGEST_OUTBOX") as info:
        write_edition(r, blocker / "e", build_message(r, "d@example.com", "d@example.com", NOW))
    assert str(blocker / "e") in str(info.value)


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    """Replace the file in one step and leave no temporary file behind."""
    target = tmp_path / "f.txt"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_published_files_are_world_readable_and_the_store_is_not(tmp_path: Path) -> None:
    """Write outbox and archive files 0644 (a web server serves them), the store 0600."""
    from digest.archive import write_archive
    from digest.config import Settings
    from digest.store import Store

    r = rendered()
    folder = write_edition(r, tmp_path / "out", build_message(r, "d@example.com", "d@e.com", NOW))
    assert {oct(p.stat().st_mode & 0o777) for p in folder.iterdir()} == {"0o644"}
    db = tmp_path / "store" / "digest.db"
    settings = Settings(db=db)
    with Store(db) as store:
        store.subscribers.upsert("ada@example.org", "", (), "", NOW)
    modes = {p.name: p.stat().st_mode & 0o777 for p in db.parent.iterdir()}
    assert modes and set(modes.values()) == {0o600}, modes
    written = write_archive(settings, tmp_path / "public")
    assert {p.stat().st_mode & 0o777 for p in written} == {0o644}
