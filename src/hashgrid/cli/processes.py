"""`hashgrid server`, `hashgrid gateway`, `hashgrid agent`: run one process in the foreground.

Each imports its process lazily, so the CLI stays quick and the three stay independent.
"""

import os
import sys
from pathlib import Path
from typing import Any

import typer


def _given(**options: Any) -> dict[str, Any]:
    """Options the user set, so settings read the environment for the rest."""
    return {k: v for k, v in options.items() if v is not None}


# How the server and the gateway serve HTTPS: the same three options on both.
TlsOption = typer.Option(
    False, "--tls", help="Serve HTTPS on loopback too (beyond loopback it is the default)."
)
InsecureOption = typer.Option(
    False, "--insecure", help="Serve plain HTTP beyond loopback (TLS is required there)."
)
TlsHostOption = typer.Option(
    [], "--tls-host", help="A further name or address its certificate holds (repeatable)."
)


def server(
    home: Path | None = typer.Option(None, help="State directory [env: HASHGRID_HOME]."),
    host: str | None = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port to listen on (default 7081)."),
    database_url: str | None = typer.Option(
        None, help="SQLAlchemy URL, e.g. postgresql+asyncpg://... [env: HASHGRID_DATABASE_URL]."
    ),
    tls: bool = TlsOption,
    insecure: bool = InsecureOption,
    tls_host: list[str] = TlsHostOption,
) -> None:
    """Run the control plane (HTTPS, as its agents' and gateways' CA, beyond loopback)."""
    from hashgrid.server.main import run
    from hashgrid.server.settings import ServerSettings

    given = _given(
        home=home,
        host=host,
        port=port,
        database_url=database_url,
        tls=tls or None,
        insecure=insecure or None,
        tls_hosts=tls_host or None,
    )
    run(ServerSettings(**given))


def gateway(
    server: str = typer.Option(
        ..., "--server", envvar="HASHGRID_SERVER", help="Control plane URL."
    ),
    token: str = typer.Option(
        ..., "--token", envvar="HASHGRID_GATEWAY_TOKEN", help="A gateway or admin token."
    ),
    host: str | None = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port to listen on (default 7080)."),
    tunnel_port: int | None = typer.Option(
        None, help="Port nodes dial to open their tunnels (default 7082)."
    ),
    tunnel_url: str | None = typer.Option(
        None,
        help="The URL nodes dial, as they reach this gateway "
        "(default: ws://HOST:TUNNEL_PORT/tunnel, wss:// when its control plane serves TLS).",
    ),
    home: Path | None = typer.Option(None, help="Where the usage spool lives."),
    rtt_table: Path | None = typer.Option(
        None,
        help="Country-to-country RTT CSV (RIPE Atlas layout) for routing to the nearest site "
        "[env: HASHGRID_GATEWAY_RTT_TABLE]; default: estimates by continent.",
    ),
    country: str | None = typer.Option(
        None,
        help="Clients' country when neither key nor header says, e.g. US "
        "[env: HASHGRID_GATEWAY_COUNTRY].",
    ),
    redis: str | None = typer.Option(
        None,
        "--redis",
        envvar="HASHGRID_GATEWAY_REDIS_URL",
        help="Share rate limits with every gateway on this Redis (redis://host:6379/0).",
    ),
    ca_hash: str | None = typer.Option(
        None, help="Hash of the control plane's CA (sha256:...), to trust an https server by."
    ),
    ca_file: Path | None = typer.Option(None, help="The control plane's CA certificate (PEM)."),
    tls: bool = TlsOption,
    insecure: bool = InsecureOption,
    tls_host: list[str] = TlsHostOption,
) -> None:
    """Run a gateway: the OpenAI-compatible /v1 API (HTTPS beyond loopback)."""
    from hashgrid.gateway.main import run
    from hashgrid.gateway.settings import GatewaySettings

    given = _given(
        host=host,
        port=port,
        tunnel_port=tunnel_port,
        tunnel_url=tunnel_url,
        home=home,
        rtt_table=rtt_table,
        country=country,
        redis_url=redis,
        ca_hash=ca_hash,
        ca_file=ca_file,
        tls=tls or None,
        insecure=insecure or None,
        tls_hosts=tls_host or None,
    )
    from hashgrid.gateway.trust import NoCertificate

    try:
        run(GatewaySettings(server_url=server, token=token, **given))
    except NoCertificate as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e


def agent(
    server: str = typer.Option(
        ..., "--server", envvar="HASHGRID_SERVER", help="Control plane URL."
    ),
    join_token: str | None = typer.Option(
        None,
        help="One-time site join token; not needed once joined.",
        envvar="HASHGRID_AGENT_JOIN_TOKEN",
    ),
    ca_hash: str | None = typer.Option(
        None,
        help="Hash of the control plane's CA (sha256:...), for an https server; a join token "
        "from `hashgrid sites join-token` carries it already.",
    ),
    ca_file: Path | None = typer.Option(None, help="The control plane's CA certificate (PEM)."),
    name: str | None = typer.Option(None, help="Node name (default: the hostname)."),
    home: Path | None = typer.Option(None, help="Where the credential and logs live."),
    verify: bool = typer.Option(
        False, "--verify", help="Benchmark and report this node again, even if verified before."
    ),
    miners: bool = typer.Option(
        False, "--miners", help="Site agent: also drive the site's ASIC miners (pyasic)."
    ),
) -> None:
    """Run the node agent: join a site and serve what the control plane assigns."""
    from hashgrid.agent.settings import AgentSettings

    given = _given(
        join_token=join_token,
        ca_hash=ca_hash,
        ca_file=ca_file,
        name=name,
        home=home,
        verify=verify or None,  # unset: HASHGRID_AGENT_VERIFY may still ask
        miners=miners or None,
    )
    AgentSettings(server_url=server, **given)  # a bad option fails here, with the CLI's message
    # The agent runs for months on every node: it replaces this process (same pid) with
    # `python -m hashgrid.agent`, which loads the agent alone, not the CLI and its libraries.
    env = {
        f"HASHGRID_AGENT_{k.upper()}": str(v) for k, v in {"server_url": server, **given}.items()
    }
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "hashgrid.agent"], {**os.environ, **env})
