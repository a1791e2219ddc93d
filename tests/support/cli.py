"""The `hashgrid` command as a user runs it: a real subprocess, its output and exit status."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.live import ADMIN_TOKEN, LiveServer

PASSWORD = "correct horse battery"  # what `sign_up` signs up with

# Connection settings a test must control itself, never inherited from the caller's shell.
_CONNECTION_VARS = ("HASHGRID_SERVER", "HASHGRID_TOKEN", "HASHGRID_HOME", "HASHGRID_CA_FILE")


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CONNECTION_VARS}
    return {**env, "NO_COLOR": "1", "COLUMNS": "200", **extra}


def server_env(server: LiveServer, token: str = ADMIN_TOKEN) -> dict[str, str]:
    return base_env(HASHGRID_SERVER=server.url, HASHGRID_TOKEN=token)


def sign_up(url: str, home: Path, email: str, organization: str, kind: str) -> dict[str, str]:
    """`hashgrid signup` with `PASSWORD` on stdin; the environment of that user's shell."""
    env = base_env(HASHGRID_HOME=str(home))
    ok(
        "signup", "--server", url, "--email", email, "--organization", organization,
        "--kind", kind, "--password-stdin", env=env, stdin=PASSWORD + "\n",
    )  # fmt: skip
    return env


def hashgrid(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hashgrid", *args],
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    """Run a command that must succeed; its stdout."""
    result = hashgrid(*args, env=env, stdin=stdin)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def ok_json(*args: str, env: dict[str, str], stdin: str | None = None) -> Any:
    return json.loads(ok(*args, "--json", env=env, stdin=stdin))


def failed(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command that must fail cleanly: non-zero exit, a message, no traceback."""
    result = hashgrid(*args, env=env, stdin=stdin)
    assert result.returncode != 0, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.stderr.strip(), "expected an error message on stderr"
    return result


def one_line_error(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    """Run a command that must fail with exactly one line on stderr, `error: ...`; that line."""
    result = failed(*args, env=env, stdin=stdin)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    return lines[0]
