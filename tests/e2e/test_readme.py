"""The README's commands, run as written (placeholders filled in), so the README stays true."""

import json
import os
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hashgrid.common.tls import client_context

from support import postgres
from support.cli import hashgrid, ok, ok_json, server_env
from support.live import LiveServer, server_settings, wait_until

README = Path(__file__).parents[2] / "README.md"


def code_block(marker: str) -> str:
    """The fenced block that follows `<!-- marker -->`, or the one under a `## marker` heading."""
    text = README.read_text()
    anchor = (
        text.index(f"<!-- {marker} -->") if f"<!-- {marker} -->" in text else text.index(marker)
    )
    match = re.compile(r"```\w*\n(.*?)```", re.S).search(text, anchor)
    assert match is not None, marker
    return match.group(1)


def setup_commands() -> list[str]:
    block = code_block("## Set up")
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


@pytest.fixture
def user_home(tmp_path: Path) -> dict[str, str]:
    """The environment of a user whose home directory is empty."""
    home = tmp_path / "user"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHGRID_")}
    return {**env, "HOME": str(home), "NO_COLOR": "1"}


@pytest.fixture
def up_running(user_home: dict[str, str]) -> Iterator[dict[str, str]]:
    install, up = setup_commands()
    assert install.startswith("pip install")
    assert up == "hashgrid up"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hashgrid", *up.split()[1:]],
        env=user_home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    up_json = Path(user_home["HOME"]) / ".hashgrid" / "up.json"
    try:
        wait_until(lambda: up_json.exists() or proc.poll() is not None, 300, "hashgrid up")
        assert proc.poll() is None, proc.communicate()[0]
        yield user_home
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0


def test_readme_quick_start_returns_a_completion(up_running: dict[str, str]) -> None:
    curl = subprocess.run(
        ["bash", "-c", code_block("quick-start")],
        env=up_running,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert curl.returncode == 0, curl.stderr
    answer = json.loads(curl.stdout)
    assert answer["choices"][0]["message"]["content"]
    assert answer["usage"]["completion_tokens"] == 8

    python = subprocess.run(
        [sys.executable, "-c", code_block("quick-start-python")],
        env=up_running,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert python.returncode == 0, python.stderr
    assert "completion_tokens=8" in python.stdout


def test_readme_real_fleet_commands_work(
    user_home: dict[str, str], tiny_model: Path, tmp_path: Path
) -> None:
    """Each line of "A real fleet", with its placeholders filled in, succeeds."""
    model = tmp_path / "llama-3-8b-q4.gguf"
    model.write_bytes(tiny_model.read_bytes())
    with postgres.fresh_database("hg_readme") as database:
        _run_fleet_block(database, dict(user_home), model, tmp_path)


def _run_fleet_block(database: str, env: dict[str, str], model: Path, tmp_path: Path) -> None:
    """Run the README block line by line: services in the background, the rest to completion."""
    background: list[subprocess.Popen[str]] = []
    tokens: dict[str, str] = {}

    def fill(line: str) -> str:
        line = line.split("  #")[0].strip()
        line = line.replace("USER@HOST/hashgrid", f"postgres@127.0.0.1:5432/{database}")
        line = line.replace("CONTROL-PLANE", "127.0.0.1")
        line = line.replace("/models/llama-3-8b-q4.gguf", str(model))
        for placeholder, value in tokens.items():
            line = line.replace(placeholder, value)
        return line

    try:
        for raw in code_block("## A real fleet").splitlines():
            line = fill(raw)
            if not line:
                continue
            words = line.split()
            if words[0] == "export":
                env.update(w.split("=", 1) for w in words[1:])
                continue
            assert words[0] == "hashgrid", line
            args = [sys.executable, "-m", "hashgrid", *words[1:]]
            if words[1] in ("server", "agent", "gateway"):
                log = tmp_path / f"{words[1]}.log"
                with log.open("w") as out:
                    proc = subprocess.Popen(
                        args, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
                    )
                background.append(proc)
                if words[1] == "server":
                    printed = wait_until(
                        lambda log=log: re.search(r"hg_admin_\S+", log.read_text()), 60, "token"
                    )
                    tokens["hg_admin_..."] = printed.group(0)
                    ca = re.search(r"CA (sha256:[0-9a-f]{64})", log.read_text())
                    assert ca is not None, log.read_text()
                    tokens["sha256:..."] = ca.group(1)
                if words[1] == "agent":
                    wait_until(lambda env=env: _nodes_ready(env), 60, "the node to join")
                if words[1] == "gateway":
                    wait_until(
                        lambda: _gateway_routes(_fleet_ca(env)),
                        120,
                        "a ready replica behind the gateway",
                    )
                continue
            done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, f"{line}\n{done.stderr}"
            if words[1:3] == ["sites", "join-token"]:
                tokens["hg_join_..."] = done.stdout.strip().splitlines()[-1]
            if words[1:3] == ["keys", "create"]:
                tokens["sk-hg-..."] = done.stdout.strip().splitlines()[-1]
        key = tokens["sk-hg-..."]
        body = {"model": "llama-3-8b-q4", "messages": [{"role": "user", "content": "hi"}]}
        r = httpx.post(
            "https://127.0.0.1:7080/v1/chat/completions",
            json={**body, "max_tokens": 3},
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
            verify=_fleet_ca(env),
        )
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 3
    finally:
        for proc in reversed(background):
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def _nodes_ready(env: dict[str, str]) -> bool:
    listed = subprocess.run(
        [sys.executable, "-m", "hashgrid", "nodes", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return listed.returncode == 0 and any(n["status"] == "ready" for n in json.loads(listed.stdout))


def _fleet_ca(env: dict[str, str]) -> ssl.SSLContext:
    """The control plane's CA, which signed the gateway's certificate, as a client trusts it."""
    ca = Path(env["HOME"]) / ".hashgrid" / "server" / "tls" / "ca.pem"
    return client_context(ca.read_bytes())


def _gateway_routes(verify: ssl.SSLContext) -> bool:
    """Whether the gateway, over HTTPS, routes to a ready replica."""
    try:
        health = httpx.get("https://127.0.0.1:7080/healthz", timeout=2, verify=verify).json()
    except (httpx.HTTPError, ValueError):
        return False
    return bool(health.get("ready_replicas", {}).get("llama-3-8b-q4"))


def test_readme_accounts_commands_work(user_home: dict[str, str], tmp_path: Path) -> None:
    """Each line of "Accounts" succeeds, the password typed at its prompt (no terminal: read
    from stdin); the invited colleague runs theirs in a home of their own."""
    colleague = {**user_home, "HOME": str(tmp_path / "colleague")}
    password = "correct horse battery"
    database = f"sqlite+aiosqlite:///{tmp_path / 'accounts.db'}"
    with LiveServer(server_settings(tmp_path / "server", database)) as server:
        code = ""
        for raw in code_block("accounts").splitlines():
            line = raw.split("  #")[0].strip()
            line = line.replace("http://CONTROL-PLANE:7081", server.url)
            words = line.replace("hg_invite_...", code).split()
            assert words[0] == "hashgrid", line
            done = subprocess.run(
                [sys.executable, "-m", "hashgrid", *words[1:]],
                env=colleague if words[1:3] == ["invites", "accept"] else user_home,
                input=f"{password}\n{password}\n",
                capture_output=True,
                text=True,
                timeout=60,
                start_new_session=True,  # no controlling terminal: the prompt reads stdin
            )
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
            if words[1:3] == ["invites", "create"]:
                code = done.stdout.strip().splitlines()[-1]
    config = Path(user_home["HOME"]) / ".hashgrid" / "config.json"
    assert config.stat().st_mode & 0o777 == 0o600
    assert json.loads(config.read_text())["email"] == "ada@acme.example"


def test_readme_money_commands_work(tmp_path: Path, tiny_model: Path) -> None:
    """Each line of "Money" succeeds as the platform admin runs it, on a control plane with the
    customer, the deployment and the key the lines name."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'money.db'}"
    with LiveServer(server_settings(tmp_path / "server", database)) as server:
        env = server_env(server)
        ok("orgs", "create", "acme", "--kind", "customer", env=env)
        ok("orgs", "create", "minerco", "--kind", "operator", env=env)
        ok("models", "add", "llama-3-8b", "--path", str(tiny_model), env=env)
        ok("deploy", "llama-3-8b", "--replicas", "0", env=env)
        key = ok_json("keys", "create", "--customer", "acme", env=env)["id"]
        for raw in code_block("money").splitlines():
            line = raw.split("  #")[0].replace("KEY_ID", key)
            words = line.replace("payouts.csv", str(tmp_path / "payouts.csv")).split()
            assert words[0] == "hashgrid", raw
            done = hashgrid(*words[1:], env=env)
            assert done.returncode == 0, f"{raw}\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "payouts.csv").read_text().startswith("period,operator,")
