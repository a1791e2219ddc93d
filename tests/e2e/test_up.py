"""`hashgrid up` as a user runs it, called with the official `openai` client."""

import json
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import psutil
import pytest
from openai.types.chat import ChatCompletion

from hashgrid.common.net import free_port

from support.live import wait_until

MESSAGES = [{"role": "user", "content": "hello world"}]


@dataclass
class Up:
    proc: subprocess.Popen[str]
    home: Path
    log: Path

    def config(self) -> dict[str, str]:
        return dict(json.loads((self.home / "up.json").read_text()))

    def output(self) -> str:
        return self.log.read_text()


def start_up(home: Path, *extra: str) -> Up:
    log = home.parent / f"{home.name}-up-{time.monotonic_ns()}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "hashgrid", "up", "--home", str(home),
                "--gateway-port", str(free_port()), "--server-port", str(free_port()),
                "--tunnel-port", str(free_port()), *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        )  # fmt: skip
    up = Up(proc, home, log)
    wait_until(
        lambda: "hashgrid is up" in up.output() or proc.poll() is not None, 300, "hashgrid up"
    )
    assert proc.poll() is None, up.output()
    return up


def stop_up(up: Up) -> int:
    up.proc.send_signal(signal.SIGINT)
    return up.proc.wait(60)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("up") / "home"


@pytest.fixture(scope="module")
def up(home: Path) -> Iterator[Up]:
    running = start_up(home)
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.kill()


def test_up_prints_the_url_and_key_and_writes_up_json(up: Up) -> None:
    config = up.config()
    assert set(config) >= {"gateway_url", "api_key", "server_url", "admin_token"}
    assert config["gateway_url"].endswith("/v1")
    assert config["api_key"] in up.output()
    assert config["gateway_url"] in up.output()
    assert oct((up.home / "up.json").stat().st_mode & 0o777) == "0o600"


def test_chat_completion_with_the_openai_client(up: Up) -> None:
    config = up.config()
    client = openai.OpenAI(base_url=config["gateway_url"], api_key=config["api_key"])
    assert [m.id for m in client.models.list()] == ["tiny-llama"]
    answer = client.chat.completions.create(
        model="tiny-llama", messages=MESSAGES, max_tokens=8, temperature=0
    )
    text = answer.choices[0].message.content
    assert text
    assert text.strip()
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 8
    assert answer.usage.prompt_tokens > len(MESSAGES[0]["content"].split())

    stream = client.chat.completions.create(
        model="tiny-llama",
        messages=MESSAGES,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(pieces) == text, "greedy decoding streams the same text it returns whole"
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
    )


def test_text_completion_with_the_openai_client(up: Up) -> None:
    config = up.config()
    client = openai.OpenAI(base_url=config["gateway_url"], api_key=config["api_key"])
    answer = client.completions.create(
        model="tiny-llama", prompt="hello world", max_tokens=4, temperature=0
    )
    assert answer.choices[0].text
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 4
    streamed = client.completions.create(
        model="tiny-llama", prompt="hello world", max_tokens=4, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == answer.choices[0].text


def test_errors_reach_the_openai_client_in_its_shape(up: Up) -> None:
    config = up.config()
    client = openai.OpenAI(base_url=config["gateway_url"], api_key=config["api_key"], max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=MESSAGES)
    assert missing.value.code == "model_not_found"
    bad_key = openai.OpenAI(base_url=config["gateway_url"], api_key="sk-hg-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad_key.models.list()


def test_the_cli_finds_the_stack_through_up_json(up: Up) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHGRID_")}
    listed = subprocess.run(
        [sys.executable, "-m", "hashgrid", "--home", str(up.home), "nodes", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    nodes = json.loads(listed.stdout)
    assert [(n["site"], n["status"]) for n in nodes] == [("local", "ready")]


def test_the_printed_curl_asks_for_a_short_answer_and_gets_it(up: Up) -> None:
    [curl] = [line for line in up.output().splitlines() if line.startswith("curl ")]
    done = subprocess.run(
        [*shlex.split(curl), "--silent", "--fail"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    usage = json.loads(done.stdout)["usage"]
    assert 0 < usage["completion_tokens"] <= 32


def test_files_under_the_home_are_readable_by_their_owner_only(up: Up) -> None:
    written = ["up.json", "logs/server.log", "logs/gateway.log", "server/hashgrid.db"]
    assert all((up.home / path).is_file() for path in written)
    assert stat.S_IMODE(up.home.stat().st_mode) == 0o700
    for path in up.home.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def test_a_killed_gateway_is_restarted_and_serves_again(up: Up) -> None:
    def gateways() -> list[psutil.Process]:
        children = psutil.Process(up.proc.pid).children()
        return [p for p in children if "hashgrid gateway" in " ".join(p.cmdline())]

    [killed] = gateways()
    killed.kill()
    wait_until(lambda: "gateway exited with code -9; restarting" in up.output(), 30, "the note")
    config = up.config()
    client = openai.OpenAI(base_url=config["gateway_url"], api_key=config["api_key"], max_retries=0)

    def answer() -> ChatCompletion | None:
        try:
            return client.chat.completions.create(
                model="tiny-llama", messages=MESSAGES, max_tokens=2
            )
        except openai.APIError:
            return None

    served = wait_until(answer, 60, "the restarted gateway to serve")
    assert served.usage is not None
    assert served.usage.completion_tokens == 2
    assert [p.pid for p in gateways()] != [killed.pid]
    assert up.proc.poll() is None, "the rest of the stack stayed up"


def test_ctrl_c_stops_everything_and_a_rerun_reuses_the_home(up: Up, home: Path) -> None:
    family = psutil.Process(up.proc.pid).children(recursive=True)
    commands = [" ".join(p.cmdline()) for p in family]
    assert any("hashgrid server" in c for c in commands)
    assert any("hashgrid gateway" in c for c in commands)
    assert any("-m hashgrid.agent" in c for c in commands)  # `hashgrid agent`, exec'd lean
    assert any("llamacpp_server" in c for c in commands)
    first = up.config()

    assert stop_up(up) == 0, up.output()
    _gone, alive = psutil.wait_procs(family, timeout=30)
    assert alive == [], f"left running: {[p.cmdline() for p in alive]}"

    again = start_up(home)
    try:
        second = again.config()
        assert second["api_key"] == first["api_key"]
        assert second["admin_token"] == first["admin_token"]
        client = openai.OpenAI(base_url=second["gateway_url"], api_key=first["api_key"])
        answer = client.chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=2)
        assert answer.usage is not None
        assert answer.usage.completion_tokens == 2
        listed = subprocess.run(
            [sys.executable, "-m", "hashgrid", "--home", str(home), "nodes", "list", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert len(json.loads(listed.stdout)) == 1, "the agent rejoined as the same node"
    finally:
        assert stop_up(again) == 0, again.output()


def test_a_busy_port_is_named_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "hashgrid", "up", "--home", str(tmp_path / "home"),
             "--server-port", str(port), "--gateway-port", str(free_port()),
             "--tunnel-port", str(free_port())],
            capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: port {port} for the control plane is in use: stop what listens there, "
        "or pass --server-port"
    ]
    assert not (tmp_path / "home").exists()


def test_sigkill_of_up_leaves_no_process_behind(tmp_path: Path) -> None:
    """If `up` itself is killed, its children go with it (they die with their parent)."""
    running = start_up(tmp_path / "home")
    family = psutil.Process(running.proc.pid).children(recursive=True)
    running.proc.kill()
    running.proc.wait(10)
    _, alive = psutil.wait_procs(family, timeout=30)
    assert alive == [], f"left running: {[p.cmdline() for p in alive]}"


def test_up_serves_a_users_model_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`hashgrid up --model FILE.gguf` serves that file under its name; SIGTERM stops it all."""
    model = tmp_path / "my-model.gguf"
    made = subprocess.run(
        [sys.executable, "-m", "hashgrid", "models", "make-tiny", str(model), "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    running = start_up(tmp_path / "home", "--model", str(model))
    try:
        config = running.config()
        assert config["deployment"] == "my-model"
        client = openai.OpenAI(base_url=config["gateway_url"], api_key=config["api_key"])
        assert [m.id for m in client.models.list()] == ["my-model"]
        answer = client.chat.completions.create(
            model="my-model", messages=MESSAGES, max_tokens=3, temperature=0
        )
        assert answer.usage is not None
        assert answer.usage.completion_tokens == 3
        family = psutil.Process(running.proc.pid).children(recursive=True)
    finally:
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(60) == 0, running.output()
    _, alive = psutil.wait_procs(family, timeout=30)
    assert alive == [], f"left running: {[p.cmdline() for p in alive]}"
