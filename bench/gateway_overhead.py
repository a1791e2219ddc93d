"""What hashgrid's gateway adds in front of an engine, beside LiteLLM's proxy doing the same job.

    python bench/gateway_overhead.py [--rounds 3] [--duration 5] [--stream] [--skip-litellm]
                                     [--budget USD]

Starts, each in its own process, on loopback:
- a fixed-response OpenAI-compatible upstream (`bench/loopback.py upstream`): the engine, as
  fast as an engine can be, so that what is measured is the proxy in front of it;
- the Python ceiling (`bench/loopback.py ceiling`): a bare pass-through, Starlette on uvicorn
  with httptools and uvloop, one aiohttp client session, orjson and nothing else;
- hashgrid's gateway as it ships (`hashgrid gateway`), with its control plane (`hashgrid server`,
  SQLite) holding an organisation, a key, a site and the upstream deployed as an external
  endpoint (`hashgrid deploy NAME --endpoint URL`): the gateway routes to it as the model's one
  replica, with no node or agent in the way;
- LiteLLM's proxy (one worker, master key, no database), installed on first use into
  `.bench-venv/` so that it never becomes a dependency of hashgrid.

Then, round after round with the order rotated, the load generator (`bench/loopback.py load`, a
process of its own, far cheaper per request than any proxy it drives) keeps each target busy at
1 connection (median and p99 latency; "added" is the median minus the upstream alone's in the
same round) and at 32 (requests/s), each after a warm-up. Also read: each target's CPU time per
request at 32 connections, which holds better than requests/s when other work shares the
machine, and its resident memory at the end. Figures are medians over the rounds. With
`--stream` the latency is the time to the first event of the stream.

    python bench/gateway_overhead.py --paced [--tokens 64] [--pace-ms 2] [--rounds 3] ...

`--paced` measures streaming the way a client sees it instead of requests/s: the upstream streams
`--tokens` token events `--pace-ms` apart (2 ms: 500 tokens/s per stream, a fast GPU engine),
then the usage chunk when asked and `data: [DONE]`, and the load generator (`load --paced`) times
every stream's content events, at 1 stream and at 32 concurrent ones (`--connections`). Printed:
tokens/s per stream (the content events after the first over the time from the first to the
last; the median over the streams of the window, then over the rounds), the slowest tenth, TTFT
(request to the first content event) and the whole stream's duration, each against the upstream
alone ("direct"). A stream whose first token comes late has a shorter span, so its tokens/s can
read above the upstream's pace; TTFT and the stream's duration show that delay. Streams that end
short of `--tokens` content events, carry an error or arrive in one read count against the goal.

With `--budget` hashgrid's bench key has a monthly budget: every request is then admitted
against it, reserves its worst case and settles it (the upstream is an external endpoint, with
no prices, so the budget is never spent; its cost is the decision's, which is what is measured).

The machine is shared and small: compare the columns of one run, not figures from elsewhere.
Goals (issue 4): 30x LiteLLM's requests/s at 32 connections; with `--paced`, hashgrid's
streaming tokens/s per stream within 5% of direct at 1 and at 32 streams.
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from loopback import CHAT, MODEL, Load

from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.common import Limits
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate

BENCH = Path(__file__).resolve().parent
LOOPBACK = BENCH / "loopback.py"
VENV = BENCH.parent / ".bench-venv"
LITELLM_REQUIREMENT = "litellm[proxy]"
ADMIN_TOKEN = "hg_admin_bench-gateway-overhead"
LITELLM_MASTER_KEY = "sk-bench-litellm-master"
GOAL_RPS_RATIO = 30.0
GOAL_ADDED_MS = 0.6  # hashgrid's added p50 latency at 1 connection, request checks included
GOAL_STREAM_SHORTFALL = 0.05  # streaming tokens/s through the gateway within 5% of direct


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------- the targets


def wait_for(
    predicate: Callable[[], bool],
    timeout_s: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}\n{tail}")
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def answers(url: str, path: str = "", status: int = 200) -> Callable[[], bool]:
    import httpx

    return lambda: httpx.get(url + path, timeout=2).status_code == status


class Target:
    """One thing the load generator drives: its URL, key and the processes whose cost is its."""

    def __init__(self, name: str, url: str, key: str) -> None:
        self.name = name
        self.url = url
        self.key = key
        self.procs: list[subprocess.Popen[bytes]] = []
        self.measured: list[subprocess.Popen[bytes]] = []  # the proxy itself: CPU and memory
        self.control_plane: subprocess.Popen[bytes] | None = None  # hashgrid's, off the path
        self.note = ""

    def start(
        self, args: list[str], log: Path, env: dict[str, str] | None = None, measured: bool = True
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env or dict(os.environ)
            )
        self.procs.append(proc)
        if measured:
            self.measured.append(proc)
        return proc

    def _tree(self, procs: list[subprocess.Popen[bytes]]) -> list[Any]:
        import psutil

        found = []
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p = psutil.Process(proc.pid)
                found += [p, *p.children(recursive=True)]
        return found

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds so far: (the proxy's processes, its control plane's)."""
        totals = []
        for procs in (self.measured, [self.control_plane] if self.control_plane else []):
            total = 0.0
            for p in self._tree(procs):
                with contextlib.suppress(Exception):
                    t = p.cpu_times()
                    total += t.user + t.system
            totals.append(total)
        return totals[0], totals[1]

    def rss_mib(self) -> float:
        total = 0
        for p in self._tree(self.measured):
            with contextlib.suppress(Exception):
                total += p.memory_info().rss
        return total / 2**20

    def stop(self) -> None:
        # SIGINT, not SIGTERM: uvicorn re-raises the signal it stopped on, and only an interrupt
        # lets cProfile write its file on the way out.
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in reversed(self.procs):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def start_upstream(tmp: Path, args: argparse.Namespace) -> Target:
    port = free_port()
    target = Target("upstream alone", f"http://127.0.0.1:{port}/v1/chat/completions", "none")
    log = tmp / "upstream.log"
    command = [sys.executable, str(LOOPBACK), "upstream", "--port", str(port)]
    if args.paced:
        command += ["--pace-ms", str(args.pace_ms), "--tokens", str(args.tokens)]
    proc = target.start(command, log)
    wait_for(answers(f"http://127.0.0.1:{port}", "/v1/models"), 30, "the upstream", proc, log)
    return target


def start_ceiling(tmp: Path, upstream: str) -> Target:
    port = free_port()
    target = Target("Python ceiling", f"http://127.0.0.1:{port}/v1/chat/completions", "none")
    log = tmp / "ceiling.log"
    proc = target.start(
        [sys.executable, str(LOOPBACK), "ceiling", "--port", str(port), "--upstream", upstream],
        log,
    )
    ready = answers(f"http://127.0.0.1:{port}", "/v1/chat/completions", 405)  # GET: not allowed
    wait_for(ready, 30, "the ceiling pass-through", proc, log)
    return target


def start_hashgrid(
    tmp: Path, upstream_base: str, profile: Path | None, budget: Decimal | None = None
) -> Target:
    """A control plane with one customer, key (with a monthly `budget` if given), site and the
    upstream deployed as an external endpoint (`hashgrid deploy NAME --endpoint URL`); the
    gateway."""
    from hashgrid.client import HashgridClient

    home = tmp / "hashgrid"
    home.mkdir()
    server_port, gateway_port = free_port(), free_port()
    server_url = f"http://127.0.0.1:{server_port}"
    target = Target("hashgrid", f"http://127.0.0.1:{gateway_port}/v1/chat/completions", "")
    env = {
        **os.environ,
        "HASHGRID_HOME": str(home / "server"),
        "NO_COLOR": "1",
        "HASHGRID_BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
        "HASHGRID_LOG_LEVEL": "warning",
    }
    log = home / "server.log"
    command = [sys.executable, "-m", "hashgrid", "server", "--port", str(server_port)]
    server = target.start(command, log, env, measured=False)
    wait_for(answers(server_url, "/healthz"), 60, "hashgrid server", server, log)
    with HashgridClient(server_url, ADMIN_TOKEN) as admin:
        admin.create_organization(OrganizationCreate(name="bench", kind="customer"))
        limits = Limits(monthly_budget_usd=budget)
        target.key = admin.create_key(KeyCreate(customer="bench", limits=limits)).key
        admin.create_site(
            SiteCreate(name="bench-site", region="us-south", country="US", power_mw=1.0)
        )
        admin.deploy(DeploymentCreate(name=MODEL, endpoint=upstream_base, site="bench-site"))
        gateway_token = admin.create_token(TokenCreate(name="bench-gateway", role="gateway")).token
    log = home / "gateway.log"
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
    command = [
        sys.executable, *profiler, "-m", "hashgrid", "gateway", "--server", server_url,
        "--token", gateway_token, "--port", str(gateway_port), "--home", str(home / "gateway"),
    ]  # fmt: skip
    gateway = target.start(command, log, {**os.environ, "NO_COLOR": "1"})
    target.control_plane = server

    def routable() -> bool:
        import httpx

        body = httpx.get(f"http://127.0.0.1:{gateway_port}/healthz", timeout=2).json()
        return int(body.get("ready_replicas", {}).get(MODEL, 0)) == 1

    wait_for(routable, 60, "the gateway to route to the upstream", gateway, log)
    return target


def litellm_binary() -> tuple[Path | None, str]:
    """LiteLLM's CLI in the bench's own virtualenv, installing it on first use."""
    binary = VENV / "bin" / "litellm"
    if binary.exists():
        return binary, ""
    print(f"installing {LITELLM_REQUIREMENT} into {VENV} (first use only) ...", flush=True)
    try:
        if not (VENV / "bin" / "python").exists():
            venv = [sys.executable, "-m", "venv", str(VENV)]
            subprocess.run(venv, check=True, capture_output=True, text=True)
        pip = [str(VENV / "bin" / "pip"), "install", "-q", LITELLM_REQUIREMENT]
        subprocess.run(pip, check=True, capture_output=True, text=True, timeout=1800)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        detail = getattr(e, "stderr", "") or ""
        return None, f"installing {LITELLM_REQUIREMENT} failed: {e}\n{detail[-2000:]}"
    if not binary.exists():
        return None, f"{LITELLM_REQUIREMENT} installed no `litellm` command in {VENV}/bin"
    return binary, ""


def start_litellm(tmp: Path, upstream_base: str, stream: bool) -> Target:
    binary, why = litellm_binary()
    if binary is None:
        raise RuntimeError(why)
    port = free_port()
    config = tmp / "litellm.yaml"
    # JSON is YAML: one worker, a master key, no database, the upstream as an OpenAI model.
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {
                            "model": f"openai/{MODEL}",
                            "api_base": f"{upstream_base}/v1",
                            "api_key": "sk-upstream-needs-none",
                        },
                    }
                ],
                "general_settings": {"master_key": LITELLM_MASTER_KEY},
                "litellm_settings": {"telemetry": False},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no fetch of the price list from GitHub
    env["NO_COLOR"] = "1"
    target = Target("LiteLLM", f"http://127.0.0.1:{port}/v1/chat/completions", LITELLM_MASTER_KEY)
    log = tmp / "litellm.log"
    command = [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
               "--num_workers", "1"]  # fmt: skip
    proc = target.start(command, log, env)
    try:
        live = answers(f"http://127.0.0.1:{port}", "/health/liveliness")
        wait_for(live, 180, "LiteLLM's proxy", proc, log)
        check_answers(target, stream)
    except RuntimeError:
        target.stop()
        raise
    return target


def check_answers(target: Target, stream: bool) -> None:
    """One request by hand: the target must answer the fixed completion before it is timed."""
    import httpx

    body = {**CHAT, "stream": True} if stream else CHAT
    headers = {"authorization": f"Bearer {target.key}"}
    r = httpx.post(target.url, json=body, headers=headers, timeout=60)
    if r.status_code != 200 or "help" not in r.text:
        raise RuntimeError(f"{target.name} answered {r.status_code}: {r.text[:500]}")


# ------------------------------------------------------------------------- measuring


def load(target: Target, connections: int, args: argparse.Namespace) -> tuple[Load, float, float]:
    """One load run in its own process: what it measured, and the CPU seconds the target and its
    control plane spent on it (read a second after the run, for work done after the answer)."""
    command = [
        sys.executable, str(LOOPBACK), "load", "--url", target.url, "--key", target.key,
        "--connections", str(connections), "--warmup", str(args.warmup),
        "--duration", str(args.duration),
    ]  # fmt: skip
    if args.paced:
        command += ["--paced", str(args.tokens)]
    elif args.stream:
        command.append("--stream")
    cpu_before, side_before = target.cpu_s()
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.duration * 10 + 120)
    time.sleep(1.0)
    cpu_after, side_after = target.cpu_s()
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{done.stderr[-3000:]}")
    got = Load(**json.loads(done.stdout.strip().splitlines()[-1]))
    return got, cpu_after - cpu_before, side_after - side_before


@dataclass
class Figures:
    rps1: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    added: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    rps32: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    control_plane_cpu_us: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def measure(targets: list[Target], args: argparse.Namespace) -> dict[str, Figures]:
    figures = {t.name: Figures() for t in targets}
    upstream = targets[0].name
    for r in range(args.rounds):
        order = targets[r % len(targets) :] + targets[: r % len(targets)]
        p50s: dict[str, float] = {}
        for target in order:
            f = figures[target.name]
            one, _, _ = load(target, 1, args)
            many, cpu, side = load(target, args.connections, args)
            latency = (
                (one.first_p50_ms, one.first_p99_ms) if args.stream else (one.p50_ms, one.p99_ms)
            )
            p50s[target.name] = latency[0]
            f.rps1.append(one.rps)
            f.p50.append(latency[0])
            f.p99.append(latency[1])
            f.rps32.append(many.rps)
            f.cpu_us.append(cpu / max(1, many.completed_all) * 1e6)
            f.control_plane_cpu_us.append(side / max(1, many.completed_all) * 1e6)
            f.errors += one.errors + many.errors
            f.error_samples += one.error_samples + many.error_samples
            print(
                f"round {r + 1} {target.name:15s} 1 conn: {one.rps:7.0f} req/s, "
                f"p50 {latency[0]:7.2f} ms, p99 {latency[1]:7.2f} ms | {args.connections} conns: "
                f"{many.rps:7.0f} req/s, {cpu / max(1, many.completed_all) * 1e6:6.0f} us CPU/req"
                + (f" | {one.errors + many.errors} errors" if one.errors + many.errors else ""),
                flush=True,
            )
        for name, p50 in p50s.items():
            figures[name].added.append(p50 - p50s[upstream])
    return figures


def report(
    targets: list[Target], figures: dict[str, Figures], args: argparse.Namespace, skipped: str
) -> bool | None:
    what = "first event" if args.stream else "latency"
    c = args.connections
    print()
    print(
        f"medians over {args.rounds} rounds ({args.duration:g}s windows after {args.warmup:g}s "
        f"warm-up; {'streamed' if args.stream else 'whole'} chat completions)"
    )
    header = (
        f"{'':16s} {'req/s @1':>9s} {'added ms @1':>12s} {'p50 ms @1':>10s} "
        f"{'p99 ms @1':>10s} {f'req/s @{c}':>10s} {'CPU us/req':>11s} {'RSS MiB':>8s}"
    )
    print(f"({what} at 1 connection; CPU per request at {c} connections)")
    print(header)
    for t in targets:
        f = figures[t.name]
        added = "-" if t is targets[0] else f"{med(f.added):.2f}"
        print(
            f"{t.name:16s} {med(f.rps1):9.0f} {added:>12s} {med(f.p50):10.2f} {med(f.p99):10.2f} "
            f"{med(f.rps32):10.0f} {med(f.cpu_us):11.0f} {t.rss_mib():8.0f}"
        )
    for t in targets:
        if figures[t.name].errors:
            print(
                f"{t.name}: {figures[t.name].errors} failed requests, e.g. "
                f"{figures[t.name].error_samples[:3]}"
            )
        if t.note:
            print(f"{t.name}: {t.note}")
    hashgrid = figures.get("hashgrid")
    ceiling = figures.get("Python ceiling")
    if hashgrid and ceiling:
        print(
            f"hashgrid / Python ceiling: {med(hashgrid.rps32) / med(ceiling.rps32):.2f}x the "
            f"req/s at {c} connections, {med(hashgrid.added) - med(ceiling.added):+.2f} ms "
            "added at 1"
        )
    litellm = figures.get("LiteLLM")
    if hashgrid is None:
        return None
    if litellm is None:
        print(f"LiteLLM not measured: {skipped}")
        print(f"goal ({GOAL_RPS_RATIO:g}x LiteLLM's req/s at {c} connections): not judged")
        return None
    print(normalize_cost())
    rps_ratio = med(hashgrid.rps32) / med(litellm.rps32)
    latency_ratio = med(litellm.added) / med(hashgrid.added)
    print(
        f"hashgrid / LiteLLM: {rps_ratio:.1f}x the req/s at {c} connections; "
        f"LiteLLM adds {latency_ratio:.1f}x hashgrid's latency at 1 connection"
    )
    cpu_ratio = med(litellm.cpu_us) / med(hashgrid.cpu_us)
    print(f"CPU per request: LiteLLM spends {cpu_ratio:.1f}x hashgrid's gateway")
    met = rps_ratio >= GOAL_RPS_RATIO
    print(
        f"goal: {GOAL_RPS_RATIO:g}x LiteLLM's requests/s at {c} connections: "
        f"{'met' if met else 'NOT met'} ({rps_ratio:.1f}x)"
    )
    added = med(hashgrid.added)
    fast = added <= GOAL_ADDED_MS
    print(
        f"goal: at most {GOAL_ADDED_MS:g} ms added p50 at 1 connection: "
        f"{'met' if fast else 'NOT met'} ({added:.2f} ms)"
    )
    return met and fast


def normalize_cost() -> str:
    """What the gateway's request checks (`gateway/normalize.py`) cost per request, in this
    process: the bench's body, and a ten-turn chat with two tools."""
    from hashgrid.gateway.normalize import normalize

    tool = {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    turns = [{"role": "system", "content": "You are terse."}] + [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "word " * 50} for i in range(10)
    ]
    big = {**CHAT, "messages": turns, "tools": [tool, tool], "temperature": 0.7, "stream": True}
    figures = []
    for name, body in (("bench body", CHAT), ("10 turns + 2 tools", big)):
        n = 20_000
        start = time.perf_counter()
        for _ in range(n):
            normalize("/v1/chat/completions", body)
        figures.append(f"{name} {(time.perf_counter() - start) / n * 1e6:.1f} us")
    return "request checks per request: " + ", ".join(figures)


@dataclass
class Paced:
    """Per round, for one target: the streams' tokens/s and TTFT at 1 and at N streams."""

    tps1: list[float] = field(default_factory=list)
    ttft1: list[float] = field(default_factory=list)
    tps32: list[float] = field(default_factory=list)
    tps32_p10: list[float] = field(default_factory=list)
    ttft32: list[float] = field(default_factory=list)
    ttft32_p99: list[float] = field(default_factory=list)
    stream_ms32: list[float] = field(default_factory=list)  # request to end of stream, p50
    cpu_us_per_token: list[float] = field(default_factory=list)
    errors: int = 0
    buffered: int = 0
    error_samples: list[str] = field(default_factory=list)


def measure_paced(targets: list[Target], args: argparse.Namespace) -> dict[str, Paced]:
    figures = {t.name: Paced() for t in targets}
    for r in range(args.rounds):
        order = targets[r % len(targets) :] + targets[: r % len(targets)]
        for target in order:
            f = figures[target.name]
            one, _, _ = load(target, 1, args)
            many, cpu, _ = load(target, args.connections, args)
            cpu_per_token = cpu / max(1, many.completed_all * args.tokens) * 1e6
            f.tps1.append(one.tokens_per_s_p50)
            f.ttft1.append(one.ttft_p50_ms)
            f.tps32.append(many.tokens_per_s_p50)
            f.tps32_p10.append(many.tokens_per_s_p10)
            f.ttft32.append(many.ttft_p50_ms)
            f.ttft32_p99.append(many.ttft_p99_ms)
            f.stream_ms32.append(many.p50_ms)
            f.cpu_us_per_token.append(cpu_per_token)
            f.errors += one.errors + many.errors
            f.buffered += one.buffered + many.buffered
            f.error_samples += one.error_samples + many.error_samples
            print(
                f"round {r + 1} {target.name:15s} 1 stream: {one.tokens_per_s_p50:6.1f} tok/s, "
                f"TTFT {one.ttft_p50_ms:6.2f} ms | {args.connections} streams: "
                f"{many.tokens_per_s_p50:6.1f} tok/s, TTFT {many.ttft_p50_ms:6.2f} ms, "
                f"{many.completed} streams, {cpu_per_token:5.1f} us CPU/token"
                + (f" | {one.errors + many.errors} errors" if one.errors + many.errors else ""),
                flush=True,
            )
    return figures


def report_paced(
    targets: list[Target], figures: dict[str, Paced], args: argparse.Namespace, skipped: str
) -> bool | None:
    c = args.connections
    direct = figures[targets[0].name]
    print()
    print(
        f"medians over {args.rounds} rounds ({args.duration:g}s windows after {args.warmup:g}s "
        f"warm-up; streams of {args.tokens} token events {args.pace_ms:g} ms apart, "
        f"{1000 / args.pace_ms:.0f} tokens/s from the upstream)"
    )
    print(
        "(tok/s: each stream's content events after the first over the time from the first to "
        "the last, median over streams; TTFT: request to first content event; p10: the slowest "
        f"tenth of streams at {c}; stream ms: request to [DONE]; CPU per token at {c} streams)"
    )
    print(
        f"{'':16s} {'tok/s @1':>9s} {'vs direct':>9s} {'TTFT ms @1':>11s} "
        f"{f'tok/s @{c}':>10s} {'vs direct':>9s} {f'p10 @{c}':>8s} {f'TTFT ms @{c}':>12s} "
        f"{f'TTFT p99 @{c}':>13s} {f'stream ms @{c}':>14s} {'CPU us/tok':>10s}"
    )
    for t in targets:
        f = figures[t.name]
        r1 = med(f.tps1) / med(direct.tps1)
        r32 = med(f.tps32) / med(direct.tps32)
        print(
            f"{t.name:16s} {med(f.tps1):9.1f} {r1:9.3f} {med(f.ttft1):11.2f} "
            f"{med(f.tps32):10.1f} {r32:9.3f} {med(f.tps32_p10):8.1f} {med(f.ttft32):12.2f} "
            f"{med(f.ttft32_p99):13.2f} {med(f.stream_ms32):14.1f} {med(f.cpu_us_per_token):10.1f}"
        )
    for t in targets:
        f = figures[t.name]
        if f.errors:
            print(f"{t.name}: {f.errors} failed streams, e.g. {f.error_samples[:3]}")
        if f.buffered:
            print(f"{t.name}: {f.buffered} streams came in one read (held back, not streamed)")
        if med(f.tps32) > med(direct.tps32) * (1 + GOAL_STREAM_SHORTFALL):
            print(
                f"{t.name}: faster than the upstream paces them at {c} streams: tokens held back "
                "then sent in bursts (see TTFT and stream ms)"
            )
    if "LiteLLM" not in figures:
        print(f"LiteLLM not measured: {skipped}")
    hashgrid = figures.get("hashgrid")
    if hashgrid is None:
        return None
    r1 = med(hashgrid.tps1) / med(direct.tps1)
    r32 = med(hashgrid.tps32) / med(direct.tps32)
    within = all(abs(r - 1) <= GOAL_STREAM_SHORTFALL for r in (r1, r32))  # slower or bursting
    met = within and not hashgrid.errors and not hashgrid.buffered
    print(
        f"goal: streaming tokens/s within {GOAL_STREAM_SHORTFALL:.0%} of direct (hashgrid, per "
        f"stream, at 1 and {c} streams): {'met' if met else 'NOT met'} "
        f"({r1:.3f} and {r32:.3f} of direct)"
    )
    return met


def print_profile(path: Path) -> None:
    """Where the gateway's own time went: its busiest functions, by time spent in them."""
    import pstats

    print(
        f"\ngateway profile ({path}); cProfile slows the gateway, so its figures above are not "
        "comparable with the others"
    )
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)


def compare(args: argparse.Namespace) -> bool | None:
    targets: list[Target] = []
    skipped = "--skip-litellm" if args.skip_litellm else ""
    with tempfile.TemporaryDirectory(prefix="hashgrid-gwbench-") as name:
        tmp = Path(name)
        try:
            upstream = start_upstream(tmp, args)
            targets.append(upstream)
            base = upstream.url.removesuffix("/v1/chat/completions")
            targets.append(start_ceiling(tmp, base))
            hashgrid = start_hashgrid(tmp, base, args.profile_gateway, args.budget)
            targets.append(hashgrid)
            stream = args.stream or args.paced
            for t in targets:
                check_answers(t, stream)
            if not args.skip_litellm:
                try:
                    targets.append(start_litellm(tmp, base, stream))
                except RuntimeError as e:
                    skipped = str(e)
                    print(f"LiteLLM will not be measured: {e}", flush=True)
            if args.paced:
                return report_paced(targets, measure_paced(targets, args), args, skipped)
            figures = measure(targets, args)
            if hashgrid.control_plane is not None:
                import psutil

                rss = psutil.Process(hashgrid.control_plane.pid).memory_info().rss / 2**20
                side = med(figures["hashgrid"].control_plane_cpu_us)
                hashgrid.note = (
                    f"CPU and RSS are the gateway's; its control plane (off the request path) "
                    f"held {rss:.0f} MiB more and spent {side:.0f} us CPU per request more"
                )
            return report(targets, figures, args, skipped)
        except BaseException:
            for log in sorted(tmp.rglob("*.log")):
                print(f"--- {log.name} (tail)\n{log.read_text(errors='replace')[-2000:]}")
            raise
        finally:
            for t in reversed(targets):
                t.stop()
            if args.profile_gateway and args.profile_gateway.exists():
                print_profile(args.profile_gateway)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="measured window, s")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up before each window, s")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--stream", action="store_true", help="streamed completions")
    parser.add_argument(
        "--paced",
        action="store_true",
        help="instead of req/s: tokens/s and TTFT of streams paced like an engine's",
    )
    parser.add_argument("--tokens", type=int, default=64, help="token events per paced stream")
    parser.add_argument(
        "--pace-ms", type=float, default=2.0, help="ms between a paced stream's token events"
    )
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument(
        "--budget",
        type=Decimal,
        metavar="USD",
        help="a monthly budget on hashgrid's bench key: every request then reserves its worst "
        "case and settles it",
    )
    parser.add_argument(
        "--profile-gateway",
        type=Path,
        metavar="FILE",
        help="run hashgrid's gateway under cProfile, save to FILE and print it",
    )
    met = compare(parser.parse_args())
    sys.exit(1 if met is False else 0)


if __name__ == "__main__":
    main()
