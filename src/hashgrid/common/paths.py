"""Where hashgrid keeps its state on disk."""

import os
from pathlib import Path


def default_home() -> Path:
    """`HASHGRID_HOME`, or `~/.hashgrid`."""
    return Path(os.environ.get("HASHGRID_HOME") or Path.home() / ".hashgrid").expanduser()


def write_private(path: Path, text: str) -> None:
    """Write a secret-bearing file readable by its owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_atomic(path: Path, text: str) -> None:
    """Write via a synced temporary file and a rename, so readers see the old or the new file,
    never half of one, even after a crash."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
