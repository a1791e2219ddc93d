"""`hashgrid server`, `hashgrid gateway`, `hashgrid agent`: run one process in the foreground.

Each imports its process lazily, so the CLI stays quick and the three stay independent.
"""

from pathlib import Path
from typing import Any

import typer

from hashgrid.cli.output import fail


def _given(**options: Any) -> dict[str, Any]:
    """Options the user set, so settings read the environment for the rest."""
    return {k: v for k, v in options.items() if v is not None}


def server(
    home: Path | None = typer.Option(None, help="State directory [env: HASHGRID_HOME]."),
    host: str | None = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port to listen on (default 7081)."),
    database_url: str | None = typer.Option(
        None, help="SQLAlchemy URL, e.g. postgresql+asyncpg://... [env: HASHGRID_DATABASE_URL]."
    ),
) -> None:
    """Run the control plane."""
    from hashgrid.server.main import run
    from hashgrid.server.settings import ServerSettings

    run(ServerSettings(**_given(home=home, host=host, port=port, database_url=database_url)))


def gateway(
    server: str = typer.Option(
        ..., "--server", envvar="HASHGRID_SERVER", help="Control plane URL."
    ),
    token: str = typer.Option(
        ..., "--token", envvar="HASHGRID_GATEWAY_TOKEN", help="A gateway or admin token."
    ),
    host: str | None = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port to listen on (default 7080)."),
    home: Path | None = typer.Option(None, help="Where the usage spool lives."),
    redis: str | None = typer.Option(
        None,
        "--redis",
        envvar="HASHGRID_GATEWAY_REDIS_URL",
        help="Share rate limits with every gateway on this Redis (redis://host:6379/0).",
    ),
) -> None:
    """Run a gateway: the OpenAI-compatible /v1 API."""
    from hashgrid.gateway.main import run
    from hashgrid.gateway.settings import GatewaySettings

    given = _given(host=host, port=port, home=home, redis_url=redis)
    run(GatewaySettings(server_url=server, token=token, **given))


def agent(
    server: str = typer.Option(
        ..., "--server", envvar="HASHGRID_SERVER", help="Control plane URL."
    ),
    join_token: str | None = typer.Option(
        None,
        help="One-time site join token; not needed once joined.",
        envvar="HASHGRID_AGENT_JOIN_TOKEN",
    ),
    name: str | None = typer.Option(None, help="Node name (default: the hostname)."),
    home: Path | None = typer.Option(None, help="Where the credential and logs live."),
    advertise_address: str | None = typer.Option(
        None, help="Address gateways use to reach engines (default: the route to the server)."
    ),
    engine_host: str | None = typer.Option(
        None, help="Address engines listen on (default 0.0.0.0)."
    ),
) -> None:
    """Run the node agent: join a site and serve what the control plane assigns."""
    from hashgrid.agent.main import run
    from hashgrid.agent.registration import NoCredential
    from hashgrid.agent.settings import AgentSettings

    settings = AgentSettings(
        server_url=server,
        **_given(
            join_token=join_token,
            name=name,
            home=home,
            advertise_address=advertise_address,
            engine_host=engine_host,
        ),
    )
    try:
        run(settings)
    except NoCredential as e:
        raise fail(str(e)) from e
