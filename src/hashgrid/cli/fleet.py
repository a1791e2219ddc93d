"""`hashgrid orgs ...`, `hashgrid sites ...`, `hashgrid nodes ...`."""

from decimal import Decimal

import typer

from hashgrid.cli.access import BudgetOption, RpmOption, TpmOption, describe
from hashgrid.cli.connection import client
from hashgrid.cli.output import JsonOption, console, emit_json, gib, table
from hashgrid.contracts.api.common import Limits, ReliabilityOut
from hashgrid.contracts.api.nodes import DrainRequest, NodeOut
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import JoinTokenCreate, SiteCreate

orgs_app = typer.Typer(help="Organizations: operators and customers.", no_args_is_help=True)
sites_app = typer.Typer(help="Sites and join tokens.", no_args_is_help=True)
nodes_app = typer.Typer(help="Nodes running the agent.", no_args_is_help=True)


@orgs_app.command("create")
def create_org(
    ctx: typer.Context,
    name: str,
    kind: str = typer.Option(..., help="operator or customer"),
    as_json: bool = JsonOption,
) -> None:
    """Create an organization."""
    with client(ctx) as c:
        org = c.create_organization(OrganizationCreate(name=name, kind=kind))
    emit_json(org) if as_json else console.print(f"created {org.kind} [bold]{org.name}[/bold]")


@orgs_app.command("list")
def list_orgs(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List organizations, with customers' limits."""
    with client(ctx) as c:
        orgs = c.list_organizations()
    if as_json:
        return emit_json(orgs)
    rows = [(o.name, o.kind, o.id, describe(o.limits)) for o in orgs]
    table("organizations", ["name", "kind", "id", "limits"], rows)


@orgs_app.command("limits")
def org_limits(
    ctx: typer.Context,
    name: str,
    rpm: int | None = RpmOption,
    tpm: int | None = TpmOption,
    budget: Decimal | None = BudgetOption,
    as_json: bool = JsonOption,
) -> None:
    """Replace a customer's limits, over all its keys together; a limit not given is lifted."""
    with client(ctx) as c:
        limits = Limits(rpm=rpm, tpm=tpm, monthly_budget_usd=budget)
        org = c.set_organization_limits(name, limits)
    if as_json:
        return emit_json(org)
    console.print(f"limits of {org.name}: {describe(org.limits)}")


@sites_app.command("create")
def create_site(
    ctx: typer.Context,
    name: str,
    region: str = typer.Option(..., help="Region name, e.g. us-south."),
    country: str = typer.Option(..., help="ISO country code, e.g. US."),
    power_mw: float = typer.Option(..., help="Contracted power budget in MW."),
    operator: str | None = typer.Option(None, help="Operator organization; default: platform."),
    as_json: bool = JsonOption,
) -> None:
    """Create a site."""
    with client(ctx) as c:
        body = SiteCreate(
            name=name,
            region=region,
            country=country.upper(),
            power_mw=power_mw,
            operator=operator,
        )
        site = c.create_site(body)
    emit_json(site) if as_json else console.print(f"created site [bold]{site.name}[/bold]")


@sites_app.command("list")
def list_sites(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List sites."""
    with client(ctx) as c:
        sites = c.list_sites()
    if as_json:
        return emit_json(sites)
    rows = [(s.name, s.region, s.country, s.power_mw, score_of(s.reliability)) for s in sites]
    table("sites", ["name", "region", "country", "MW", "score"], rows)


@sites_app.command("join-token")
def join_token(
    ctx: typer.Context,
    site: str,
    ttl: int = typer.Option(86400, help="Seconds until the token expires."),
    as_json: bool = JsonOption,
) -> None:
    """Make a one-time token for a node to join SITE."""
    with client(ctx) as c:
        token = c.create_join_token(site, JoinTokenCreate(ttl_s=ttl))
    if as_json:
        return emit_json(token)
    console.print(
        f"join token for {token.site} (one use, expires {token.expires_at:%Y-%m-%d %H:%M} UTC):"
    )
    typer.echo(token.token)


@nodes_app.command("list")
def list_nodes(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List nodes with their status, capacity and the models their stores hold."""
    with client(ctx) as c:
        nodes = c.list_nodes()
    if as_json:
        return emit_json(nodes)
    rows = [
        (
            n.name,
            n.site,
            _node_state(n),
            n.admission,
            len(n.fingerprint.gpus) or "-",
            n.fingerprint.cpu_count,
            gib(n.capacity_bytes),
            "-" if n.holdings is None else len(n.holdings),
            n.capacity_class or "-",
            score_of(n.reliability),
            n.id,
        )
        for n in nodes
    ]
    columns = [
        "name", "site", "status", "admission", "gpus", "cpus", "capacity", "models held", "class",
        "score", "id",
    ]  # fmt: skip
    table("nodes", columns, rows)


@nodes_app.command("show")
def show_node(ctx: typer.Context, node: str, as_json: bool = JsonOption) -> None:
    """One node (id or name): its hardware, and the benchmark and check it passed at join."""
    with client(ctx) as c:
        n = c.get_node(node)
    if as_json:
        return emit_json(n)
    fp = n.fingerprint
    console.print(
        f"[bold]{n.name}[/bold]  site {n.site}  {_node_state(n)}  "
        f"class {n.capacity_class or '-'}  capacity {gib(n.capacity_bytes)}  id {n.id}",
        highlight=False,
    )
    console.print(
        f"{fp.cpu_count} CPUs ({fp.cpu_model}), {gib(fp.memory_total_bytes)} RAM, "
        f"{fp.os} {fp.arch}, joined {n.joined_at:%Y-%m-%d %H:%M} UTC",
        highlight=False,
        markup=False,
    )
    if fp.gpus:
        rows = [
            (g.index, g.name, gib(g.memory_total_bytes), g.uuid, g.quarantine_reason or "")
            for g in fp.gpus
        ]
        table("gpus", ["index", "name", "memory", "uuid", "quarantined"], rows)
    elif fp.gpu_error:
        console.print(f"no GPU: {fp.gpu_error}", highlight=False, markup=False)
    # One line, never wrapped: the reason is what an operator searches for and quotes.
    console.print(
        f"admission: {n.admission}" + (f": {n.admission_reason}" if n.admission_reason else ""),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    _print_verification(n)
    _print_reliability(n.reliability)


def score_of(r: ReliabilityOut | None) -> str:
    return "-" if r is None else f"{r.score:.2f}"


def _print_reliability(r: ReliabilityOut | None) -> None:
    """The score and why: each part with the counts behind it."""
    if r is None:
        console.print("reliability: not scored yet")
        return
    console.print(
        f"reliability {r.score:.2f} over the last day (higher gets more traffic):\n"
        f"  uptime     {r.uptime:.2f}\n"
        f"  success    {r.success:.2f}  ({r.failed} of {r.requests} requests failed)\n"
        f"  speed      {r.speed:.2f}  ({r.slow} of {r.requests} slow to the first token)\n"
        f"  agreement  {r.agreement:.2f}  ({r.mismatches} of {r.checks} spot-checks disagreed)",
        highlight=False,
    )


def _print_verification(n: NodeOut) -> None:
    v = n.verification
    if v is None:
        console.print("not verified yet: its agent has not reported a benchmark")
        return
    console.print(f"verified {v.verified_at:%Y-%m-%d %H:%M:%S} UTC", highlight=False)
    if b := v.benchmark:
        where = "GPU" if b.gpu_offload else "CPU"
        console.print(
            f"  benchmark: {b.model} on the {where} ({b.engine}), {b.seconds:.2f} s in all\n"
            f"  prompt:     {b.prompt_tokens} tokens at {b.prompt_tokens_per_s:,.0f} tokens/s\n"
            f"  generation: {b.generated_tokens} tokens at "
            f"{b.generation_tokens_per_s:,.0f} tokens/s",
            highlight=False,
        )
    if v.problems:
        console.print("problems (each refuses the node):")
        for problem in v.problems:
            console.print(f"  - {problem}", highlight=False, markup=False, soft_wrap=True)
    else:
        console.print("no problems found")
    for note in v.notes:
        console.print(f"  note: {note}", highlight=False, markup=False)


def _node_state(n: NodeOut) -> str:
    if n.drain_deadline is not None:
        return f"{n.status}, draining by {n.drain_deadline:%H:%M:%S} UTC"
    if n.power != "on":
        return f"{n.status}, {n.power}"  # powered off while idle, or being woken
    return f"{n.status}, cordoned" if n.cordoned else str(n.status)


@nodes_app.command("cordon")
def cordon(ctx: typer.Context, node: str, as_json: bool = JsonOption) -> None:
    """Place no new replicas on NODE (id or name); its replicas keep serving."""
    with client(ctx) as c:
        n = c.cordon(node)
    emit_json(n) if as_json else console.print(f"{n.name}: {_node_state(n)}")


@nodes_app.command("uncordon")
def uncordon(ctx: typer.Context, node: str, as_json: bool = JsonOption) -> None:
    """Let NODE take replicas again (this also ends a drain)."""
    with client(ctx) as c:
        n = c.uncordon(node)
    emit_json(n) if as_json else console.print(f"{n.name}: {_node_state(n)}")


@nodes_app.command("drain")
def drain(
    ctx: typer.Context,
    node: str,
    deadline: float = typer.Option(60.0, help="Seconds engines get to finish in-flight requests."),
    as_json: bool = JsonOption,
) -> None:
    """Route no new requests to NODE, move its replicas elsewhere, then stop its engines."""
    with client(ctx) as c:
        n = c.drain(node, DrainRequest(deadline_s=deadline))
    emit_json(n) if as_json else console.print(f"{n.name}: {_node_state(n)}")


@nodes_app.command("verify")
def verify(ctx: typer.Context, node: str, as_json: bool = JsonOption) -> None:
    """Verify NODE again: it takes no traffic until its agent's new benchmark passes."""
    with client(ctx) as c:
        n = c.verify_node(node)
    if as_json:
        return emit_json(n)
    said = f"{n.name}: {n.admission}: {n.admission_reason}"
    console.print(said, highlight=False, markup=False, soft_wrap=True)
