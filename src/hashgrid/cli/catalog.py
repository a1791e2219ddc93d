"""`hashgrid models ...` and `hashgrid deploy`."""

from collections.abc import Mapping
from pathlib import Path

import typer
from pydantic import ValidationError

from hashgrid.cli.connection import client
from hashgrid.cli.output import JsonOption, console, emit_json, fail, table
from hashgrid.client import ApiError, HashgridClient
from hashgrid.contracts import sources
from hashgrid.contracts.api.catalog import ModelCreate, ModelOut
from hashgrid.contracts.api.deployments import (
    DeploymentChange,
    DeploymentCreate,
    DeploymentOut,
    ReplicaLoadOut,
)
from hashgrid.contracts.engines import ENGINES, FORMATS, engine_help
from hashgrid.models.hub import RepositoryFacts, describe_folder, describe_repository

models_app = typer.Typer(help="The model catalog, and the tiny test model.", no_args_is_help=True)


@models_app.command("make-tiny")
def make_tiny(path: Path, seed: int = typer.Option(0, help="Seed of the random weights.")) -> None:
    """Write a tiny random-weight llama GGUF model to PATH (for tests and demos)."""
    from hashgrid.models.tiny import make_tiny_gguf

    written = make_tiny_gguf(path, seed=seed)
    console.print(f"wrote {written} ({written.stat().st_size:,} bytes)")


@models_app.command("add")
def add(
    ctx: typer.Context,
    name: str,
    path: Path | None = typer.Option(
        None,
        "--path",
        help="A GGUF file, or a folder of a safetensors repository, at this path on nodes.",
    ),
    source: str | None = typer.Option(
        None,
        help="Or where nodes download it: an http(s) URL or hf://OWNER/REPO/FILE[@REV] (one GGUF "
        "file), or hf://OWNER/REPO[@REV] (a safetensors repository).",
    ),
    size: int | None = typer.Option(
        None,
        help="Bytes of a --source model (for placement); a repository's are read from the hub.",
    ),
    sha256: str | None = typer.Option(
        None, help="SHA-256 of a one-file --source model: nodes check their download against it."
    ),
    context_length: int = typer.Option(2048, help="Context length to serve with."),
    task: str = typer.Option("generate", help="generate (chat, completions) or embed."),
    format: str | None = typer.Option(
        None,
        "--format",
        help=f"{' or '.join(FORMATS)}; default: safetensors for a repository or folder, else gguf.",
    ),
    engine: str | None = typer.Option(
        None, help=f"{engine_help()}; default: llamacpp for gguf, else the first GPU engine."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Add a model to the catalog, from a path on the nodes or a download source."""
    if (path is None) == (source is None):
        raise fail("give exactly one of --path and --source")
    with client(ctx) as c:
        if path is not None:
            model = add_file(c, name, path, context_length, task, format=format, engine=engine)
        else:
            repository = sources.is_repository(str(source))
            format = format or ("safetensors" if repository else "gguf")
            architecture = None
            if repository and size is None:
                facts = _describe(str(source), format)
                size, architecture = facts.size_bytes, facts.architecture
            if size is None:
                raise fail("--source needs --size (bytes), so placement knows what fits")
            body = _create(
                name=name,
                source=str(source),
                size_bytes=size,
                context_length=context_length,
                task=task,
                sha256=sha256,
                format=format,
                engine=engine,
                architecture=architecture,
            )
            model = c.add_model(body)
    emit_json(model) if as_json else console.print(f"added model [bold]{model.name}[/bold]")


def _describe(source: str, format: str) -> RepositoryFacts:
    """A repository's size and architecture, as the hub (HF_ENDPOINT, HF_TOKEN) lists them."""
    known = FORMATS.get(format)
    try:
        return describe_repository(source, known.files if known is not None else ())
    except Exception as e:  # the hub's and its HTTP client's errors, a source that is no repo
        raise fail(f"cannot read {source} from the hub ({e}); give --size") from e


def _create(**fields: object) -> ModelCreate:
    try:
        return ModelCreate.model_validate(fields)
    except ValidationError as e:
        raise fail("; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())) from e


@models_app.command("list")
def list_models(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List the catalog."""
    with client(ctx) as c:
        models = c.list_models()
    if as_json:
        return emit_json(models)
    rows = [(m.name, m.engine, f"{m.size_bytes:,}", m.context_length, m.source) for m in models]
    table("models", ["name", "engine", "bytes", "context", "source"], rows)


def add_file(
    c: HashgridClient,
    name: str,
    path: Path,
    context_length: int = 2048,
    task: str = "generate",
    *,
    format: str | None = None,
    engine: str | None = None,
) -> ModelOut:
    """Add the model at `path` (a file, or a repository's folder), as nodes will find it there."""
    path = path.expanduser().resolve()
    architecture = None
    if path.is_dir():
        facts = describe_folder(path)
        size, architecture = facts.size_bytes, facts.architecture
        format = format or "safetensors"
    elif path.is_file():
        size = path.stat().st_size
        format = format or "gguf"
    else:
        raise fail(f"no such file or folder: {path}")
    body = _create(
        name=name,
        source=str(path),
        size_bytes=size,
        architecture=architecture,
        context_length=context_length,
        task=task,
        format=format,
        engine=engine,
    )
    return c.add_model(body)


def deploy(
    ctx: typer.Context,
    model: str = typer.Argument(
        ...,
        help="A catalog model, or a .gguf file to add and deploy; with --endpoint, the name "
        "clients use.",
    ),
    name: str | None = typer.Option(None, help="The name clients use; default: the model's."),
    replicas: int | None = typer.Option(
        None, min=0, help="A fixed replica count (default 1), or where to start within min..max."
    ),
    min_replicas: int | None = typer.Option(
        None, "--min", min=0, help="Autoscale from this many (0: scale to zero when idle)."
    ),
    max_replicas: int | None = typer.Option(None, "--max", min=0, help="Autoscale up to this."),
    target_load: float | None = typer.Option(
        None, help="Requests in flight or queued per replica before scaling out (default 8)."
    ),
    ttft_target_ms: float | None = typer.Option(
        None, help="Scale out while time to first token p90 is above this."
    ),
    idle: float | None = typer.Option(
        None, help="With --min 0: seconds without a request before scaling to zero (300)."
    ),
    regions: str = typer.Option("", help="Comma-separated allowed regions; default: any."),
    tier: str = typer.Option("flex", help="firm (never curtailed) or flex (cheaper)."),
    engine: str | None = typer.Option(None, help=f"{engine_help()}; default: the model's."),
    tensor_parallel_size: int = typer.Option(
        1, "--tensor-parallel-size", "--tp", min=1, help="GPUs per replica, on one node."
    ),
    gpu_type: str | None = typer.Option(
        None, help="Only GPUs whose name contains this, e.g. H100."
    ),
    endpoint: str | None = typer.Option(
        None,
        help="Serve MODEL from this OpenAI-compatible server, run outside hashgrid (its base "
        "URL, with or without /v1); nothing is placed.",
    ),
    site: str | None = typer.Option(
        None, help="With --endpoint: the site it is part of (default: the only site)."
    ),
    task: str | None = typer.Option(None, help="With --endpoint: generate (default) or embed."),
    customer: str | None = typer.Option(
        None, help="Private to this customer organization (default: public, every customer's)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Deploy a model: replicas are placed on nodes and served through the gateways. With
    --endpoint, a server already running elsewhere is served under MODEL instead."""
    if endpoint is None and (site is not None or task is not None):
        raise fail("--site and --task go with --endpoint")
    if endpoint is not None:
        placing = {
            "--name": name is not None,
            "--replicas": replicas is not None,
            "--min": min_replicas is not None,
            "--max": max_replicas is not None,
            "--target-load": target_load is not None,
            "--ttft-target-ms": ttft_target_ms is not None,
            "--idle": idle is not None,
            "--regions": bool(regions),
            "--engine": engine is not None,
            "--tp": tensor_parallel_size != 1,
            "--gpu-type": gpu_type is not None,
        }
        if given := [option for option, is_given in placing.items() if is_given]:
            raise fail(
                f"{', '.join(given)} cannot go with --endpoint: an endpoint is one replica run "
                "outside hashgrid, named by MODEL, never placed or scaled"
            )
        with client(ctx) as c:
            external = {
                "name": model,
                "endpoint": endpoint,
                "site": site,
                "task": task,
                "customer": customer,
            }
            body = DeploymentCreate.model_validate(_given(external))
            deployment = c.deploy(body)
        if as_json:
            return emit_json(deployment)
        console.print(
            f"deployed [bold]{deployment.name}[/bold] from {deployment.endpoint} "
            f"at site {deployment.site}"
        )
        return None
    with client(ctx) as c:
        model_name = resolve_model(c, model)
        asked = {
            "model": model_name,
            "name": name,
            "replicas": replicas,
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "target_load": target_load,
            "ttft_target_ms": ttft_target_ms,
            "idle_s": idle,
            "regions": [r for r in regions.split(",") if r],
            "tier": tier,
            "engine": engine,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_type": gpu_type,
            "customer": customer,
        }
        deployment = c.deploy(DeploymentCreate.model_validate(_given(asked)))
    if as_json:
        return emit_json(deployment)
    console.print(f"deployed [bold]{deployment.name}[/bold] ({size_text(deployment)})")


def size_text(d: DeploymentOut) -> str:
    """`2 replica(s)`, or `2 replica(s), autoscaled 0..8` for an autoscaled deployment."""
    if d.min_replicas == d.max_replicas:
        return f"{d.replicas} replica(s)"
    return f"{d.replicas} replica(s), autoscaled {d.min_replicas}..{d.max_replicas}"


def resolve_model(c: HashgridClient, model: str) -> str:
    """A catalog name for `model`, adding it first when it is a path to a .gguf file."""
    path = Path(model).expanduser()
    if not model.endswith(".gguf"):
        return model
    try:
        return c.get_model(path.stem).name
    except ApiError as e:
        if e.status != 404:
            raise
    return add_file(c, path.stem, path).name


deployments_app = typer.Typer(help="Deployments and their replicas.", no_args_is_help=True)


@deployments_app.command("list")
def list_deployments(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List deployments with their ready replicas."""
    with client(ctx) as c:
        deployments = c.list_deployments()
    if as_json:
        return emit_json(deployments)
    rows = [
        (
            d.name,
            d.model or d.endpoint,
            f"{d.ready_replicas}/{d.replicas}",
            d.tier,
            ",".join(d.regions) or "any",
            d.customer or "public",
            d.condition or "",
        )
        for d in deployments
    ]
    columns = ["name", "model or endpoint", "ready", "tier", "regions", "for", "condition"]
    table("deployments", columns, rows)


@deployments_app.command("show")
def show(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """One deployment, with each replica's status and reason."""
    with client(ctx) as c:
        d = c.get_deployment(name)
    if as_json:
        return emit_json(d)
    print_deployment(d)


def print_deployment(d: DeploymentOut) -> None:
    if d.endpoint is not None:
        console.print(
            f"[bold]{d.name}[/bold]  endpoint {d.endpoint}  site {d.site}  task {d.task}  "
            f"ready {d.ready_replicas}/{d.replicas}  (external: run outside hashgrid)",
            highlight=False,
        )
        if d.condition:
            console.print(f"condition: {d.condition}")
        if d.events:
            table("events", ["at", "event"], [(f"{e.at:%H:%M:%S}", e.message) for e in d.events])
        return
    gpu_type = f"  GPU type {d.gpu_type}" if d.gpu_type else ""
    console.print(
        f"[bold]{d.name}[/bold]  model {d.model}  generation {d.generation}  "
        f"ready {d.ready_replicas}/{d.replicas}  "
        f"{_scaling_text(d)}"
        f"tier {d.tier}  regions {','.join(d.regions) or 'any'}  engine {d.engine}  "
        f"tensor parallel {d.tensor_parallel_size}{gpu_type}  "
        f"for {f'customer {d.customer} only' if d.customer else 'every customer (public)'}"
    )
    if d.condition:
        console.print(f"condition: {d.condition}")
    rows = [
        (
            r.id,
            r.node_id,
            str(r.generation),
            ",".join(map(str, r.gpus)) or "cpu",
            r.status,
            r.endpoint,
            _load_text(r.load),
            r.reason,
        )
        for r in d.replica_list
    ]
    columns = ["replica", "node", "gen", "gpus", "status", "endpoint", "load", "reason"]
    table("replicas", columns, rows)
    for failure in d.recent_failures:
        console.print(
            f"[red]failed[/red] {failure.id} on node {failure.node_id} at "
            f"{failure.updated_at:%H:%M:%S}: {failure.reason}",
            highlight=False,
        )
    if d.events:
        table("events", ["at", "event"], [(f"{e.at:%H:%M:%S}", e.message) for e in d.events])


def _scaling_text(d: DeploymentOut) -> str:
    """`autoscaled 0..8 (8 in flight per replica, TTFT p90 500 ms, zero after 300 s idle)  `"""
    if d.min_replicas == d.max_replicas:
        return ""
    targets = [f"{d.target_load:g} in flight per replica"]
    if d.ttft_target_ms is not None:
        targets.append(f"TTFT p90 {d.ttft_target_ms:g} ms")
    if d.min_replicas == 0:
        targets.append(f"zero after {d.idle_s:g} s idle")
    return f"autoscaled {d.min_replicas}..{d.max_replicas} ({', '.join(targets)})  "


def _load_text(load: ReplicaLoadOut | None) -> str:
    """`3 running, 1 waiting, KV 42%`; empty when the engine reported no figures."""
    if load is None:
        return ""
    parts = []
    if load.running is not None:
        parts.append(f"{load.running} running")
    if load.waiting is not None:
        parts.append(f"{load.waiting} waiting")
    if load.kv_cache_usage is not None:
        parts.append(f"KV {load.kv_cache_usage:.0%}")
    return ", ".join(parts)


@deployments_app.command("update")
def update(
    ctx: typer.Context,
    name: str,
    model: str | None = typer.Option(None, help="Another catalog model to roll out."),
    engine: str | None = typer.Option(None, help=f"{', '.join(ENGINES)}."),
    tensor_parallel_size: int | None = typer.Option(
        None, "--tensor-parallel-size", "--tp", min=1, help="GPUs per replica."
    ),
    gpu_type: str | None = typer.Option(None, help="Only GPUs whose name contains this."),
    regions: str | None = typer.Option(None, help="Comma-separated allowed regions."),
    tier: str | None = typer.Option(None, help="firm or flex (applies at once)."),
    customer: str | None = typer.Option(
        None, help="Make it private to this customer organization (applies at once)."
    ),
    public: bool = typer.Option(False, "--public", help="Make it public (applies at once)."),
    as_json: bool = JsonOption,
) -> None:
    """Change what a deployment's replicas run: a new generation, rolled out one replica at a
    time while the old ones keep serving (see `deployments show` for its progress). Who may
    call it (--customer, --public) and its tier change at once."""
    if public and customer is not None:
        raise fail("--public and --customer exclude each other")
    with client(ctx) as c:
        asked = {
            "model": model,
            "engine": engine,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_type": gpu_type,
            "regions": None if regions is None else [r for r in regions.split(",") if r],
            "tier": tier,
            "customer": customer,
        }
        change = _given(asked) | ({"customer": None} if public else {})
        d = c.change_deployment(name, DeploymentChange.model_validate(change))
    if as_json:
        return emit_json(d)
    console.print(f"{d.name}: generation {d.generation}, {d.ready_replicas}/{d.replicas} ready")


@deployments_app.command("delete")
def delete(ctx: typer.Context, name: str) -> None:
    """Delete a deployment; its replicas are stopped."""
    with client(ctx) as c:
        c.delete_deployment(name)
    console.print(f"deleted {name}")


def scale(
    ctx: typer.Context,
    name: str,
    replicas: int | None = typer.Argument(None, min=0, help="A fixed replica count."),
    min_replicas: int | None = typer.Option(None, "--min", min=0, help="Autoscale from this."),
    max_replicas: int | None = typer.Option(None, "--max", min=0, help="Autoscale up to this."),
    target_load: float | None = typer.Option(None, help="Requests in flight per replica."),
    ttft_target_ms: float | None = typer.Option(None, help="Time to first token p90 target."),
    idle: float | None = typer.Option(None, help="With --min 0: idle seconds before zero."),
    as_json: bool = JsonOption,
) -> None:
    """Resize a deployment: a fixed count (`scale NAME 3`), or autoscaling bounds and targets
    (`scale NAME --min 0 --max 8`)."""
    with client(ctx) as c:
        asked = {
            "replicas": replicas,
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "target_load": target_load,
            "ttft_target_ms": ttft_target_ms,
            "idle_s": idle,
        }
        d = c.change_deployment(name, DeploymentChange.model_validate(_given(asked)))
    emit_json(d) if as_json else console.print(f"{d.name}: {size_text(d)}")


def _given(options: Mapping[str, object]) -> dict[str, object]:
    """The options given on the command line (not None): the fields a request sets, so the
    server's defaults apply to the rest and a change leaves the rest as they are."""
    return {field: value for field, value in options.items() if value is not None}
