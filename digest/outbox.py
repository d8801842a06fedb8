"""Write an edition to disk: digest.html, digest.txt and a sample digest.eml."""

from __future__ import annotations

import logging
import os
import tempfile
from email.message import EmailMessage
from pathlib import Path

from digest.errors import DeliveryError
from digest.models import RenderedEdition

logger = logging.getLogger(__name__)


# Published files (outbox, archive) are for a web server or a colleague to read; mkstemp
# alone would leave them 0600, which a web server answers with 403 or 404.
PUBLISHED = 0o644


def write_atomic(path: Path, data: bytes, mode: int = PUBLISHED) -> None:
    """Write data to path with mode so that a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_edition(rendered: RenderedEdition, folder: Path, sample: EmailMessage) -> Path:
    """Write the rendered edition into folder; return the folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / "digest.html", rendered.html.encode("utf-8"))
        write_atomic(folder / "digest.txt", rendered.text.encode("utf-8"))
        write_atomic(folder / "digest.eml", sample.as_bytes())
    except OSError as err:
        raise DeliveryError(
            f"{folder}: cannot write the edition: {err.strerror or err}",
            hint="check DIGEST_OUTBOX is a writable folder",
        ) from err
    logger.info("wrote edition %s to %s", rendered.edition.id, folder)
    return folder
