"""Check, before any long work, that a folder exists or can be made and takes a new file."""

from __future__ import annotations

from pathlib import Path

from accelsim.errors import AccelsimError


def ensure_writable_dir(folder: Path, what: str) -> Path:
    """``folder``, created if needed, once a probe file can be written there; else a one-line error naming ``what``."""
    folder = Path(folder)
    probe = folder / ".accelsim-write-probe"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise AccelsimError(f"{what}: cannot write to {folder} ({exc.strerror or exc})") from None
    return folder
