"""`hashgrid up`: control plane, gateway and one local agent on this machine, serving a model.

The three run as separate processes, as they would across machines; `up` starts them in order,
wires them together through the REST API, waits for a ready replica, and stops them in reverse
order on Ctrl-C. Run again with the same home, it reuses everything it made the first time.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
import typer
from rich.panel import Panel
from rich.status import Status

from hashgrid.agent import registration
from hashgrid.cli.catalog import add_file
from hashgrid.cli.output import console, fail
from hashgrid.cli.upfile import UpFile
from hashgrid.client import ApiError, HashgridClient
from hashgrid.common.net import port_taken
from hashgrid.common.paths import default_home, keep_private, private_dir
from hashgrid.common.processes import die_with_parent, stop_process
from hashgrid.common.restarts import Restarts
from hashgrid.common.secrets import new_secret
from hashgrid.common.tls import client_context
from hashgrid.contracts.api.access import Role, TokenCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate, OrgKind
from hashgrid.contracts.api.sites import SiteCreate

SITE = "local"
CUSTOMER = "default"
READY_TIMEOUT_S = 600.0
# A child that dies is restarted after about a second, then twice as long each time up to half a
# minute; one that ran for a minute before dying starts over at a second.
RESTART_FIRST_S = 1.0
RESTART_CAP_S = 30.0
STABLE_S = 60.0
# The answer's length in the curl `up` prints: without it the tiny model writes ~2,000 tokens.
TRY_MAX_TOKENS = 32


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived."""


@dataclass
class Child:
    """One process of the stack, started again with the same arguments whenever it dies."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: Restarts = field(
        default_factory=lambda: Restarts(
            first_s=RESTART_FIRST_S, cap_s=RESTART_CAP_S, stable_s=STABLE_S
        )
    )
    restart_at: float | None = None  # set while it waits to be restarted

    def launch(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hashgrid", *self.args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                # Own session: Ctrl-C reaches `up` only, which stops children in order.
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        self.started_at = time.monotonic()
        self.restart_at = None

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Stack:
    home: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Child:
        env = {**os.environ, "HASHGRID_HOME": str(self.home), **(env or {})}
        child = Child(name, args, env, self.home / "logs" / f"{name}.log")
        child.launch()
        self.children.append(child)
        return child

    def check(self) -> None:
        """Fail loudly if any child died: while the stack starts, a death is a fault to show
        (a bad option, a model that does not load), not one to retry."""
        for child in self.children:
            code = child.exit_code()
            if code is not None:
                raise fail(
                    f"{child.name} exited with code {code}; last lines of {child.log_path}:\n"
                    f"{child.tail()}"
                )

    def supervise(self) -> None:
        """Restart each child that died, after its backoff; one line says so. Once the stack
        is up, only `up` being stopped stops it (systemd's `Restart=on-failure`)."""
        now = time.monotonic()
        for child in self.children:
            code = child.exit_code()
            if code is None:
                continue
            if child.restart_at is None:
                delay = child.restarts.next_delay(served_s=now - child.started_at)
                child.restart_at = now + delay
                console.print(
                    f"{child.name} exited with code {code}; restarting it in {delay:.1f}s "
                    f"(restart {child.restarts.count}; log: {child.log_path})",
                    highlight=False,
                )
            elif now >= child.restart_at:
                child.launch()

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.proc is not None:
                stop_process(child.proc, timeout=15)
        self.children.clear()


def up(
    ctx: typer.Context,
    home: Path | None = typer.Option(None, help="State directory [env: HASHGRID_HOME]."),
    gateway_port: int = typer.Option(7080, help="Port of the OpenAI-compatible gateway."),
    server_port: int = typer.Option(7081, help="Port of the control plane."),
    tunnel_port: int = typer.Option(7082, help="Port the local node's tunnel dials."),
    model: Path | None = typer.Option(
        None, help="A GGUF model to serve (default: a tiny generated test model)."
    ),
) -> None:
    """Run a whole hashgrid on this machine and serve a model; Ctrl-C stops it.

    A process of the stack that dies once it is up is restarted, with a growing delay."""
    keep_private()
    for port, what, option in (
        (server_port, "the control plane", "--server-port"),
        (gateway_port, "the gateway", "--gateway-port"),
        (tunnel_port, "the gateway's node tunnels", "--tunnel-port"),
    ):
        if port_taken(port):
            raise fail(
                f"port {port} for {what} is in use: stop what listens there, or pass {option}"
            )
    home = (home or ctx.find_root().params.get("home") or default_home()).expanduser().resolve()
    private_dir(home)
    previous = UpFile.load(home)
    # The control plane serves HTTPS as the stack's CA even on loopback, so the agent and the
    # gateway trust it as they would across machines; /v1 stays plain on loopback for curl.
    server_url = f"https://127.0.0.1:{server_port}"
    ca_file = home / "server" / "tls" / "ca.pem"
    admin_token = previous.admin_token if previous else new_secret("hg_admin_")
    stack = Stack(home)
    restore = _raise_on_signals()
    started = time.monotonic()
    try:
        with Status("starting the control plane", console=console) as status:
            model_path = (model or _tiny_model(home)).expanduser().resolve()
            stack.start(
                "server",
                ["server", "--port", str(server_port), "--tls"],
                {"HASHGRID_BOOTSTRAP_ADMIN_TOKEN": admin_token},
            )
            _wait(stack, "the control plane's CA", ca_file.is_file)
            client = HashgridClient(
                server_url, admin_token, verify=client_context(ca_file.read_bytes())
            )
            _wait(stack, "control plane", client.healthy)

            status.update("registering the site, the model and a key")
            deployment = _ensure_deployment(client, model_path, previous)
            key_id, api_key = _ensure_key(client, previous)
            gateway_token = (
                previous.gateway_token
                if previous and previous.gateway_token
                else client.create_token(TokenCreate(name="up-gateway", role=Role.GATEWAY)).token
            )

            status.update("starting the agent")
            agent_args = [
                "agent",
                "--server",
                server_url,
                "--name",
                "local-node",
                "--ca-file",  # on this machine; another node would pin it from its join token
                str(ca_file),
            ]
            # The agent keeps its credential from the first run, even if the ports changed.
            if not registration.move(home / "agent" / "credential.json", server_url):
                agent_args += ["--join-token", client.create_join_token(SITE).token]
            stack.start("agent", agent_args)

            status.update("starting the gateway")
            stack.start(
                "gateway",
                [
                    "gateway",
                    "--server",
                    server_url,
                    "--port",
                    str(gateway_port),
                    "--ca-file",
                    str(ca_file),
                    "--tunnel-port",
                    str(tunnel_port),
                ],
                {"HASHGRID_GATEWAY_TOKEN": gateway_token},
            )

            status.update(f"loading {deployment} on the engine")
            _wait(stack, "a ready replica", lambda: _gateway_ready(gateway_port, deployment))

        up_file = UpFile(
            gateway_url=f"http://127.0.0.1:{gateway_port}/v1",
            api_key=api_key,
            server_url=server_url,
            admin_token=admin_token,
            api_key_id=key_id,
            gateway_token=gateway_token,
            deployment=deployment,
        )
        up_file.save(home)
        _print_ready(up_file, home, time.monotonic() - started)
        while True:
            stack.supervise()
            time.sleep(0.5)
    except Interrupted:
        console.print("stopping...")
    except ApiError as e:
        raise fail(f"control plane refused a call: {e}") from e
    finally:
        with Status("stopping gateway, agent and control plane", console=console):
            stack.stop()
        restore()


def _tiny_model(home: Path) -> Path:
    from hashgrid.models.tiny import TINY_MODEL_NAME, make_tiny_gguf

    path = home / "models" / f"{TINY_MODEL_NAME}.gguf"
    return path if path.is_file() else make_tiny_gguf(path)


def _ensure_deployment(client: HashgridClient, model_path: Path, previous: UpFile | None) -> str:
    """Site, customer, catalog entry and deployment for `model_path`; its deployment name."""
    if SITE not in {s.name for s in client.list_sites()}:
        client.create_site(SiteCreate(name=SITE, region="local", country="ZZ", power_mw=0.0))
    if CUSTOMER not in {o.name for o in client.list_organizations()}:
        client.create_organization(OrganizationCreate(name=CUSTOMER, kind=OrgKind.CUSTOMER))
    name = model_path.stem
    catalog = {m.name: m for m in client.list_models()}
    if name not in catalog:
        add_file(client, name, model_path)
    elif catalog[name].source != str(model_path):
        raise fail(f"the catalog has another file as {name!r}: {catalog[name].source}")
    deployments = {d.name for d in client.list_deployments()}
    stale = previous.deployment if previous else ""
    if stale and stale != name and stale in deployments:
        client.delete_deployment(stale)  # `up` serves one model at a time
    if name not in deployments:
        client.deploy(DeploymentCreate(model=name))
    return name


def _ensure_key(client: HashgridClient, previous: UpFile | None) -> tuple[str, str]:
    if previous and previous.api_key_id:
        live = {k.id for k in client.list_keys() if k.revoked_at is None}
        if previous.api_key_id in live:
            return previous.api_key_id, previous.api_key
    key = client.create_key(KeyCreate(customer=CUSTOMER, name="up"))
    return key.id, key.key


def _gateway_ready(port: int, deployment: str) -> bool:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0)
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and r.json().get("ready_replicas", {}).get(deployment, 0) > 0


def _wait(stack: Stack, what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready():
        stack.check()
        if time.monotonic() > deadline:
            raise fail(f"gave up waiting for {what} after {READY_TIMEOUT_S:.0f}s")
        time.sleep(0.2)


def _print_ready(up_file: UpFile, home: Path, took_s: float) -> None:
    console.print(
        Panel.fit(
            f"[bold green]hashgrid is up[/bold green] in {took_s:.1f}s, serving "
            f"[bold]{up_file.deployment}[/bold]\n\n"
            f"OpenAI base URL  {up_file.gateway_url}\n"
            f"API key          {up_file.api_key}\n"
            f"control plane    {up_file.server_url}\n"
            f"for scripts      {home / 'up.json'}",
            title="hashgrid up",
        )
    )
    body = json.dumps(
        {
            "model": up_file.deployment,
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": TRY_MAX_TOKENS,
        }
    )
    console.print("Try it:", highlight=False)
    console.print(
        f"curl {up_file.gateway_url}/chat/completions "
        f'-H "Authorization: Bearer {up_file.api_key}" '
        f"-H 'Content-Type: application/json' -d '{body}'",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    console.print("Ctrl-C stops everything.")


def _raise_on_signals() -> Callable[[], None]:
    def handler(signum: int, _: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore
