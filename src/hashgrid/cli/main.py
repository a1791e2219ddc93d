"""The `hashgrid` command: processes, `up`, and the control plane's resources."""

import os
from pathlib import Path

import typer

from hashgrid.cli import (
    access,
    billing,
    catalog,
    compute,
    fleet,
    members,
    power,
    prices,
    processes,
    signin,
    sim,
    up,
)
from hashgrid.cli.connection import ConnectionOptionsEverywhere

app = typer.Typer(
    name="hashgrid",
    help="hashgrid: one OpenAI-compatible inference network over bitcoin-mining sites.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=ConnectionOptionsEverywhere,
)


@app.callback()
def root(
    server: str | None = typer.Option(
        None,
        "--server",
        envvar="HASHGRID_SERVER",
        help="Control plane URL (default: the saved login's, else up.json's).",
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="HASHGRID_TOKEN",
        help="A personal or admin token (default: the saved login, else up.json).",
    ),
    home: Path | None = typer.Option(
        None, "--home", envvar="HASHGRID_HOME", help="State directory (default ~/.hashgrid)."
    ),
    ca_file: Path | None = typer.Option(
        None,
        "--ca-file",
        envvar="HASHGRID_CA_FILE",
        help="The control plane's CA (PEM), for an https server (default: the one pinned by "
        "`login --ca-hash`, else this home's own server's).",
    ),
) -> None:
    """Options here apply to every command, and may also follow its name."""
    if home is not None:
        # Read by every process's settings as their default home (server, gateway, agent).
        os.environ["HASHGRID_HOME"] = str(home)
    if ca_file is not None:
        os.environ["HASHGRID_CA_FILE"] = str(ca_file)  # read by cli/trust.py


app.command("up")(up.up)
app.command("signup")(signin.signup)
app.command("login")(signin.login)
app.command("logout")(signin.logout)
app.command("whoami")(signin.whoami)
app.command("server")(processes.server)
app.command("gateway")(processes.gateway)
app.command("agent")(processes.agent)
app.command("deploy")(catalog.deploy)
app.command("scale")(catalog.scale)
app.command("usage")(access.usage)
app.command("audit")(members.audit)
app.command("earnings")(billing.earnings)
app.command("sim")(sim.sim)
app.add_typer(fleet.orgs_app, name="orgs")
app.add_typer(fleet.sites_app, name="sites")
app.add_typer(power.power_app, name="power")
app.add_typer(fleet.nodes_app, name="nodes")
app.add_typer(catalog.models_app, name="models")
app.add_typer(catalog.deployments_app, name="deployments")
app.add_typer(access.keys_app, name="keys")
app.add_typer(compute.contracts_app, name="contracts")
app.add_typer(prices.prices_app, name="prices")
app.add_typer(signin.tokens_app, name="tokens")
app.add_typer(members.members_app, name="members")
app.add_typer(members.invites_app, name="invites")
app.add_typer(billing.invoices_app, name="invoices")
app.add_typer(billing.payouts_app, name="payouts")
