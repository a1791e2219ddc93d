"""How long a CLI command takes to start: this tree against another commit (default `main`).

    python bench/cli_startup.py [--before main] [--runs 15]

Each command runs as a fresh `python -m hashgrid` process (the median of --runs), with
PYTHONPATH on this tree's `src` and then on a `git worktree` of --before checked out in a
temporary folder. `nodes list` is sent to a closed port, so it fails at once: its time is
the CLI's start plus one refused connection. Also printed: how many modules of the server,
and of SQLAlchemy, `import hashgrid.cli.main` loads. Wall-clock figures on a shared machine:
compare the two trees in one run, not with figures from elsewhere.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "hashgrid --help": ["--help"],
    "hashgrid nodes list --help": ["nodes", "list", "--help"],
    "hashgrid nodes list (no server)": [
        "nodes", "list", "--server", "http://127.0.0.1:1", "--token", "x",
    ],
}  # fmt: skip
LOADED = (
    "import sys, hashgrid.cli.main; "
    "print(sum(m.startswith('hashgrid.server') for m in sys.modules), "
    "sum(m.split('.')[0] == 'sqlalchemy' for m in sys.modules))"
)


def environment(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "NO_COLOR": "1"}


def median_seconds(src: Path, args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "hashgrid", *args],
            env=environment(src),
            capture_output=True,
            timeout=60,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def loaded(src: Path) -> tuple[int, int]:
    """(server modules, SQLAlchemy modules) that `import hashgrid.cli.main` loads."""
    out = subprocess.run(
        [sys.executable, "-c", LOADED],
        env=environment(src),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    return int(out[0]), int(out[1])


@contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A detached `git worktree` of `ref` in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", str(tree), ref], check=True, capture_output=True)
        try:
            yield tree
        finally:
            subprocess.run([*git, "remove", "--force", str(tree)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="The git ref to compare with.")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with checkout(args.before) as before:
        trees = {args.before: before / "src", "this tree": ROOT / "src"}
        for name, src in trees.items():
            server, sqlalchemy = loaded(src)
            print(f"{name}: import hashgrid.cli.main loads {server} server modules, "
                  f"{sqlalchemy} SQLAlchemy modules")  # fmt: skip
        for command, argv in COMMANDS.items():
            old, new = (median_seconds(src, argv, args.runs) for src in trees.values())
            print(
                f"{command}: {args.before} {old * 1000:.0f} ms, this tree {new * 1000:.0f} ms "
                f"({old / new:.2f}x), median of {args.runs}"
            )


if __name__ == "__main__":
    main()
