"""Where hashgrid keeps its state on disk."""

import os
from pathlib import Path


def default_home() -> Path:
    """`HASHGRID_HOME`, or `~/.hashgrid`."""
    return Path(os.environ.get("HASHGRID_HOME") or Path.home() / ".hashgrid").expanduser()


def keep_private() -> None:
    """Make every file and folder this process (and its children) creates readable by its
    owner only (0600, 0700): the database, logs, spools and models under the home hold
    credentials, usage and customers' prompts. Each process's entry calls it first."""
    os.umask(0o077)


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner may enter (0700), made if missing; a home left open by
    an older version is closed, which shields every file already in it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


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
