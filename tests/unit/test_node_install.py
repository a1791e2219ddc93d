"""The node's systemd unit and install script, checked without systemd (none runs here)."""

import configparser
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hashgrid.cli.main import app

ROOT = Path(__file__).parents[2]
UNIT = ROOT / "deploy" / "systemd" / "hashgrid-agent.service"
SCRIPT = ROOT / "scripts" / "install-node"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_unit_restarts_the_agent_and_stops_it_gracefully() -> None:
    service = _unit()["Service"]
    assert service["Restart"] == "always"
    # The agent alone is signalled: on stop it drains its engines; a crash leaves them serving
    # for the restarted agent to adopt.
    assert service["KillMode"] == "process"
    assert int(service["TimeoutStopSec"]) > 30  # longer than the default stop grace
    assert service["EnvironmentFile"] == "/etc/hashgrid/agent.env"
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


def test_unit_command_is_one_the_cli_accepts() -> None:
    argv = _unit()["Service"]["ExecStart"].split()
    assert argv[0].endswith("/hashgrid")
    result = CliRunner().invoke(app, [*argv[1:], "--help"], env={"HASHGRID_SERVER": "http://x"})
    assert result.exit_code == 0, result.output


def _install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The script in dry-run under `root`, for a node of https://cp:7081."""
    return subprocess.run(
        [str(SCRIPT), "--server", "https://cp:7081", "--join-token", "hg_join_abc",
         "--root", str(root), "--dry-run", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _pip_installs(done: subprocess.CompletedProcess[str]) -> str:
    """What the script would hand pip."""
    [line] = [line for line in done.stdout.splitlines() if "/pip install " in line]
    return line.rsplit(" ", 1)[1]


def test_install_script_writes_the_env_file_and_unit(tmp_path: Path) -> None:
    done = _install(tmp_path, "--package", str(ROOT))
    assert done.returncode == 0, done.stderr
    env = tmp_path / "etc" / "hashgrid" / "agent.env"
    assert env.read_text().splitlines() == [
        "HASHGRID_SERVER=https://cp:7081",
        "HASHGRID_AGENT_JOIN_TOKEN=hg_join_abc",
    ]
    assert oct(env.stat().st_mode & 0o777) == "0o600"  # the join token is a secret
    unit = tmp_path / "etc" / "systemd" / "system" / "hashgrid-agent.service"
    assert unit.read_text() == UNIT.read_text()
    assert "would run: systemctl enable --now hashgrid-agent" in done.stdout


def test_install_script_installs_a_source_tree_or_wheel_by_its_absolute_path(
    tmp_path: Path,
) -> None:
    assert _pip_installs(_install(tmp_path / "a", "--package", str(ROOT))) == str(ROOT)
    wheel = tmp_path / "hashgrid-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    relative = os.path.relpath(wheel)  # pip reads a bare relative name as a package name
    assert _pip_installs(_install(tmp_path / "b", "--package", relative)) == str(wheel)


def test_install_script_takes_a_remote_source_only_pinned_to_a_commit_or_a_hash(
    tmp_path: Path,
) -> None:
    pinned = [
        f"git+https://git.example/hashgrid.git@{'a1' * 20}",
        f"https://files.example/hashgrid-0.1.0-py3-none-any.whl#sha256={'0f' * 32}",
    ]
    for i, spec in enumerate(pinned):
        assert _pip_installs(_install(tmp_path / str(i), "--package", spec)) == spec


@pytest.mark.parametrize(
    "package",
    [
        None,  # the old default: `hashgrid` from PyPI, an unrelated project
        "hashgrid",
        "hashgrid==0.1.0",
        "git+https://git.example/hashgrid.git",  # a branch's head, whatever it is today
        "git+https://git.example/hashgrid.git@main",
        "https://files.example/hashgrid-0.1.0-py3-none-any.whl",  # no hash to check
        "http://files.example/hashgrid.whl#sha256=" + "0f" * 32,  # not over TLS
        "./no-such-checkout",
    ],
)
def test_install_script_refuses_anything_but_a_checked_source(
    tmp_path: Path, package: str | None
) -> None:
    done = _install(tmp_path, *(["--package", package] if package else []))
    assert done.returncode == 2
    assert "--package" in done.stderr
    assert "pip install" not in done.stdout
    assert not (tmp_path / "etc").exists()


def test_install_script_refuses_without_server_or_token(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(SCRIPT), "--server", "https://cp:7081", "--root", str(tmp_path), "--dry-run"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--join-token" in done.stderr
    assert not (tmp_path / "etc").exists()
