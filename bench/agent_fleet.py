"""How many agents one control-plane process sustains: heartbeat latency and database writes.

    python bench/agent_fleet.py [--agents 2000] [--duration 60] [--interval 5]

Starts one `hashgrid server` (SQLite under a temporary HASHGRID_HOME), creates a site and one
join token per agent through the REST API, then runs every agent in this one asyncio process,
speaking the real agent protocol: join with a fingerprint, beat every interval (with jitter, the
fingerprint every 15th beat as the agent sends it), and hold an assignments long poll
(`wait=25`). Once every agent has joined and beaten, it measures a steady-state window of
`--duration` seconds: client-side heartbeat latency, failed beats, and the server's
`hashgrid_db_writes_total` from /metrics at both ends of the window.

Goal: 2,000 agents at a 5 s interval with p95 heartbeat latency under 100 ms and at most one
database write per node per minute in steady state, on a 2-core machine (server and agents
share it, so the figures are pessimistic for the server).
"""

import argparse
import asyncio
import contextlib
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil

ADMIN_TOKEN = "hg_admin_bench-agent-fleet"
PROTOCOL = {"x-hashgrid-agent-protocol": "1", "content-type": "application/json"}
LONG_POLL_S = 25.0
FINGERPRINT_EVERY = 15  # as hashgrid.agent.heartbeat sends it
GOAL_P95_MS = 100.0
GOAL_WRITES_PER_NODE_MIN = 1.0


def raise_fd_limit() -> None:
    """Each agent holds a long poll, so this process and the server need thousands of fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fingerprint(name: str) -> dict[str, Any]:
    """A fixed, plausible GPU node: constant, so a beat that carries it changes nothing."""
    gpus = [
        {
            "index": i,
            "uuid": f"GPU-{name}-{i}",
            "name": "NVIDIA H100 80GB HBM3",
            "memory_total_bytes": 85_899_345_920,
            "memory_free_bytes": 85_000_000_000,
        }
        for i in range(8)
    ]
    return {
        "hostname": name,
        "os": "Linux",
        "arch": "x86_64",
        "cpu_model": "AMD EPYC 9654",
        "cpu_count": 192,
        "memory_total_bytes": 2_199_023_255_552,
        "memory_available_bytes": 2_000_000_000_000,
        "gpus": gpus,
        "gpu_driver": "550.54.15",
    }


@dataclass
class Stats:
    window: tuple[float, float] | None = None  # (start, end) on the monotonic clock
    latencies_ms: list[float] = field(default_factory=list)
    failed: int = 0  # beats in the window that did not get a 200
    failed_outside: int = 0
    failed_agents: set[int] = field(default_factory=set)
    beats_outside: int = 0
    polls: int = 0
    poll_failures: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    timeline: list[tuple[float, str, float]] = field(default_factory=list)  # (t, what, value)
    stopping: bool = False

    def in_window(self, t: float) -> bool:
        return self.window is not None and self.window[0] <= t < self.window[1]

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class Agent:
    def __init__(self, index: int, url: str, beats: aiohttp.ClientSession, stats: Stats) -> None:
        self.index = index
        self.name = f"bench-{index:05d}"
        self.url = url
        self.beats = beats
        self.stats = stats
        self.fingerprint = fingerprint(self.name)
        self.headers: dict[str, str] = dict(PROTOCOL)
        self.beaten = asyncio.Event()

    async def join(self, token: str) -> None:
        body = {"join_token": token, "name": self.name, "fingerprint": self.fingerprint}
        timeout = aiohttp.ClientTimeout(total=120)  # a join retried after a timeout finds its
        for attempt in range(5):  # one-time token spent, so give the server time
            try:
                async with self.beats.post(
                    f"{self.url}/api/v1/agent/join",
                    data=orjson.dumps(body),
                    headers=PROTOCOL,
                    timeout=timeout,
                ) as r:
                    if r.status == 200:
                        joined = orjson.loads(await r.read())
                        self.headers["authorization"] = f"Bearer {joined['credential']}"
                        return
                    if r.status < 500:
                        raise RuntimeError(f"join answered {r.status}: {await r.text()}")
                    self.stats.error(f"join: HTTP {r.status}")  # rolled back: the token is unspent
            except (aiohttp.ClientError, TimeoutError) as e:
                self.stats.error(f"join: {type(e).__name__}")
            await asyncio.sleep(0.5 * (attempt + 1))
        raise RuntimeError(f"{self.name} could not join")

    async def beat_forever(self, interval_s: float) -> None:
        with_fingerprint = orjson.dumps({"fingerprint": self.fingerprint})
        plain = b"{}"
        url = f"{self.url}/api/v1/agent/heartbeat"
        n = 0
        await asyncio.sleep(random.uniform(0, interval_s))  # agents do not beat in step
        while not self.stats.stopping:
            body = with_fingerprint if n % FINGERPRINT_EVERY == 0 else plain
            started = time.monotonic()
            ok = False
            try:
                async with self.beats.post(url, data=body, headers=self.headers) as r:
                    await r.read()
                    ok = r.status == 200
                    if not ok:
                        self.stats.error(f"beat: HTTP {r.status}")
            except (aiohttp.ClientError, TimeoutError) as e:
                self.stats.error(f"beat: {type(e).__name__}")
            elapsed = time.monotonic() - started
            if self.stats.in_window(started):
                if ok:
                    self.stats.latencies_ms.append(elapsed * 1000)
                    self.stats.timeline.append((started, "beat", elapsed * 1000))
                else:
                    self.stats.failed += 1
                    self.stats.failed_agents.add(self.index)
            else:
                self.stats.beats_outside += 1
                self.stats.failed_outside += not ok
            if ok:
                self.beaten.set()
            n += 1
            # The agent sleeps the interval after each beat; jitter keeps the fleet spread out.
            await asyncio.sleep(max(0.0, interval_s * random.uniform(0.9, 1.1)))

    async def poll_forever(self, polls: aiohttp.ClientSession) -> None:
        revision = 0
        url = f"{self.url}/api/v1/agent/assignments"
        timeout = aiohttp.ClientTimeout(total=LONG_POLL_S + 15)
        while not self.stats.stopping:
            params = {"after": str(revision), "wait": str(LONG_POLL_S)}
            try:
                async with polls.get(
                    url, params=params, headers=self.headers, timeout=timeout
                ) as r:
                    body = await r.read()
                    if r.status == 200:
                        revision = orjson.loads(body)["revision"]
                        self.stats.polls += 1
                        self.stats.timeline.append((time.monotonic(), "poll", revision))
                        continue
                    self.stats.error(f"poll: HTTP {r.status}")
            except (aiohttp.ClientError, TimeoutError) as e:
                self.stats.error(f"poll: {type(e).__name__}")
            self.stats.poll_failures += 1
            await asyncio.sleep(1.0)


class Server:
    """One `hashgrid server` process with a fresh SQLite home."""

    def __init__(self, home: Path, interval_s: float, ttl_s: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "server.log"
        env = {
            **os.environ,
            "HASHGRID_HOME": str(home),
            "HASHGRID_BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
            "HASHGRID_HEARTBEAT_INTERVAL_S": str(interval_s),
            "HASHGRID_NODE_TTL_S": str(ttl_s),
            "HASHGRID_LOG_LEVEL": "warning",
            "NO_COLOR": "1",
        }
        home.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hashgrid", "server", "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=raise_fd_limit,  # thousands of long polls need thousands of fds
            )
        self.ps = psutil.Process(self.proc.pid)

    async def wait_ready(self, http: aiohttp.ClientSession, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited:\n{self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{self.url}/healthz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.2)
        raise SystemExit("server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, float] | None:
    """The server's /metrics as {sample with labels: value}; None when it has none."""
    async with http.get(f"{url}/metrics") as r:
        if r.status != 200:
            return None
        text = await r.text()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def db_writes(samples: dict[str, float] | None) -> float | None:
    """`hashgrid_db_writes_total`, summed over its labels."""
    if samples is None:
        return None
    return sum(v for k, v in samples.items() if k.startswith("hashgrid_db_writes_total"))


def server_side(before: dict[str, float], after: dict[str, float]) -> str:
    """Heartbeat handling time as the server measured it in the window (from its histogram)."""
    name = "hashgrid_heartbeat_seconds"
    count = after[f"{name}_count"] - before[f"{name}_count"]
    if count <= 0:
        return "no heartbeats"
    mean = (after[f"{name}_sum"] - before[f"{name}_sum"]) / count
    p95 = "> largest bucket"
    buckets = sorted(
        (float(k.split('le="')[1].split('"')[0]), after[k] - before.get(k, 0.0))
        for k in after
        if k.startswith(f"{name}_bucket") and "+Inf" not in k
    )
    for le, n in buckets:
        if n >= 0.95 * count:
            p95 = f"<= {le * 1000:g} ms"
            break
    return f"mean {mean * 1000:.2f} ms, p95 {p95} ({count:.0f} beats)"


async def admin_setup(http: aiohttp.ClientSession, url: str, agents: int) -> list[str]:
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    site = {"name": "bench", "region": "us-south", "country": "US", "power_mw": 50.0}
    async with http.post(f"{url}/api/v1/sites", json=site, headers=admin) as r:
        assert r.status == 201, await r.text()
    gate = asyncio.Semaphore(32)

    async def token() -> str:
        async with (
            gate,
            http.post(f"{url}/api/v1/sites/bench/join-tokens", json={}, headers=admin) as r,
        ):
            assert r.status == 201, await r.text()
            return str((await r.json())["token"])

    return await asyncio.gather(*(token() for _ in range(agents)))


def print_timeline(stats: Stats) -> None:
    """Per second of the window: beats, their worst latency, long polls answered."""
    assert stats.window is not None
    seconds: dict[int, list[float]] = {}
    polls: dict[int, int] = {}
    for t, what, value in stats.timeline:
        s = int(t - stats.window[0])
        if what == "beat":
            seconds.setdefault(s, []).append(value)
        elif stats.in_window(t):
            polls[s] = polls.get(s, 0) + 1
    for s in sorted(seconds):
        worst = max(seconds[s])
        print(f"  t={s:3d}s beats {len(seconds[s]):4d} max {worst:7.1f} ms polls {polls.get(s, 0)}")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> bool:
    raise_fd_limit()
    stats = Stats()
    with tempfile.TemporaryDirectory(prefix="hashgrid-fleet-") as tmp:
        home = Path(args.keep_home) if args.keep_home else Path(tmp) / "home"
        server = Server(home, args.interval, args.ttl)
        # Beats share one keep-alive pool; each long poll needs a connection of its own.
        beats = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.beat_connections),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        polls = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        tasks: list[asyncio.Task[None]] = []
        try:
            await server.wait_ready(beats)
            tokens = await admin_setup(beats, server.url, args.agents)
            fleet = [Agent(i, server.url, beats, stats) for i in range(args.agents)]
            started = time.monotonic()
            gate = asyncio.Semaphore(args.join_concurrency)

            async def bring_up(agent: Agent, token: str) -> None:
                async with gate:
                    await agent.join(token)
                tasks.append(asyncio.create_task(agent.beat_forever(args.interval)))
                tasks.append(asyncio.create_task(agent.poll_forever(polls)))

            await asyncio.gather(*(bring_up(a, t) for a, t in zip(fleet, tokens, strict=True)))
            joined_s = time.monotonic() - started
            deadline = time.monotonic() + max(60.0, args.interval * 12)
            while not all(a.beaten.is_set() for a in fleet):
                if time.monotonic() > deadline:
                    beaten = sum(a.beaten.is_set() for a in fleet)
                    raise SystemExit(f"only {beaten} agents beat; errors: {stats.errors}")
                await asyncio.sleep(0.5)
            print(
                f"{args.agents} agents joined in {joined_s:.1f}s and beat "
                f"({time.monotonic() - started:.1f}s); settling {args.settle:.0f}s",
                flush=True,
            )
            await asyncio.sleep(args.settle)
            metrics_before = await scrape(beats, server.url)
            cpu_before = server.ps.cpu_times()
            own_cpu_before = psutil.Process().cpu_times()
            t0 = time.monotonic()
            stats.window = (t0, t0 + args.duration)
            await asyncio.sleep(args.duration)
            # Beats sent inside the window may still be in flight: give them a moment.
            await asyncio.sleep(min(5.0, args.interval))
            metrics_after = await scrape(beats, server.url)
            cpu_after = server.ps.cpu_times()
            own_cpu_after = psutil.Process().cpu_times()
            load = os.getloadavg()[0]
            rss = server.ps.memory_info().rss
            connections = len(server.ps.net_connections(kind="tcp"))
        except BaseException:
            print(f"server log tail:\n{server.log_path.read_text(errors='replace')[-4000:]}")
            raise
        finally:
            stats.stopping = True
            for task in tasks:
                task.cancel()
            if tasks:  # bounded: a cancellation aiohttp turns into a timeout is retried
                await asyncio.wait(tasks, timeout=10)
            await beats.close()
            await polls.close()
            server.stop()
        log_tail = server.log_path.read_text(errors="replace")[-2000:]

    lat = stats.latencies_ms
    beats_total = len(lat) + stats.failed
    cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    own_cpu_s = (own_cpu_after.user + own_cpu_after.system) - (
        own_cpu_before.user + own_cpu_before.system
    )
    writes_before, writes_after = db_writes(metrics_before), db_writes(metrics_after)
    sustained = args.agents - len(stats.failed_agents)
    p95 = percentile(lat, 95)
    print(f"agents sustained      {sustained} of {args.agents} (every beat in the window answered)")
    print(f"beats/s               {beats_total / args.duration:.1f}")
    print(
        f"heartbeat latency     p50 {percentile(lat, 50):.1f} ms, p95 {p95:.1f} ms, "
        f"p99 {percentile(lat, 99):.1f} ms, max {max(lat, default=float('nan')):.1f} ms, "
        f"mean {statistics.fmean(lat) if lat else float('nan'):.1f} ms"
    )
    if metrics_before is not None and metrics_after is not None:
        print(f"server-side handling  {server_side(metrics_before, metrics_after)}")
    print(f"failed beats          {stats.failed} in the window, {stats.failed_outside} outside it")
    print(f"long polls answered   {stats.polls}, failed {stats.poll_failures}")
    writes_per_node_min = None
    if writes_before is not None and writes_after is not None:
        writes = writes_after - writes_before
        writes_per_node_min = writes / args.agents / (args.duration / 60)
        assert metrics_before is not None
        assert metrics_after is not None
        kinds = {
            k.split('"')[1]: metrics_after[k] - metrics_before.get(k, 0.0)
            for k in metrics_after
            if k.startswith("hashgrid_db_writes_total{")
        }
        nodes = {
            k.split('"')[1]: int(v)
            for k, v in metrics_after.items()
            if k.startswith("hashgrid_nodes{")
        }
        print(
            f"db writes             {writes:.0f} in {args.duration:.0f}s: "
            f"{writes_per_node_min:.4f} per node per minute {kinds}; nodes {nodes}"
        )
    else:
        print("db writes             n/a (the server has no /metrics)")
    print(f"server RSS            {rss / 2**20:.0f} MiB, {connections} TCP connections")
    print(
        f"CPU in the window     server {100 * cpu_s / args.duration:.0f}%, agents (this process) "
        f"{100 * own_cpu_s / args.duration:.0f}% of one core; load average {load:.2f} "
        f"on {os.cpu_count()} cores"
    )
    if args.timeline:
        print_timeline(stats)
    if stats.errors:
        print(f"errors                {dict(sorted(stats.errors.items()))}")
    if "Traceback" in log_tail:
        print(f"server log tail:\n{log_tail}")
    met = p95 < GOAL_P95_MS and stats.failed == 0
    if writes_per_node_min is not None:
        met = met and writes_per_node_min <= GOAL_WRITES_PER_NODE_MIN
    print(
        f"goal (p95 < {GOAL_P95_MS:.0f} ms, <= {GOAL_WRITES_PER_NODE_MIN:.0f} write/node/min, "
        f"no failed beat): {'met' if met else 'NOT met'}"
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=60.0, help="steady-state window, s")
    parser.add_argument("--interval", type=float, default=5.0, help="heartbeat interval, s")
    parser.add_argument("--ttl", type=float, default=15.0, help="the server's node TTL, s")
    parser.add_argument("--settle", type=float, default=10.0, help="wait after joins, s")
    parser.add_argument("--join-concurrency", type=int, default=4)
    parser.add_argument("--beat-connections", type=int, default=500)
    parser.add_argument("--keep-home", help="server home to use and keep (default: a temp dir)")
    parser.add_argument("--timeline", action="store_true", help="print per-second figures")
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    met = asyncio.run(run(args))
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
