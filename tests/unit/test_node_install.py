"""The node's systemd unit and install script, checked without systemd (none runs here)."""

import configparser
import subprocess
from pathlib import Path

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


def test_install_script_writes_the_env_file_and_unit(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(SCRIPT), "--server", "https://cp:7081", "--join-token", "hg_join_abc",
         "--root", str(tmp_path), "--dry-run"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
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


def test_install_script_refuses_without_server_or_token(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(SCRIPT), "--server", "https://cp:7081", "--root", str(tmp_path), "--dry-run"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--join-token" in done.stderr
    assert not (tmp_path / "etc").exists()
