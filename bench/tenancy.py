"""The scoped list and usage-summary endpoints at fleet scale, on PostgreSQL: p50/p95/p99 each.

    python bench/tenancy.py [--records 1000000] [--n 200]

Creates a fresh PostgreSQL database and starts `hashgrid server` on it (a subprocess: client and
server do not share an interpreter), which migrates it; signs up two customers and an operator
through the API (their admins' personal tokens are what the timings use), then loads the rest
straight into the tables with COPY: 200 organizations (150 customers, 50 operators, as signed
up or loaded), 200 sites of the operators in 6 regions, 2,000 nodes (40 per operator), 10,000
API keys (about 67 per customer) and `--records` usage records over the last 60 days, stored in
time order as gateways ship them. Customers' traffic is skewed (Zipf: the biggest sends 18% of
it); each record is served by a random node. Nodes are stored lost (no agent runs here), so no
reconciler acts during the timings. After `VACUUM ANALYZE` the server is restarted (so it
loads this month's spend from the records, as after any restart), then each endpoint is called
`--n` times one after another after a warm-up, with a real HTTP client over a kept-alive
connection, as the biggest customer, the median one and an operator. `first` is the first call
of each: a summary's first call sums every day of its window in SQL; later ones sum only the
days whose sums are not kept (today, and a day a late record arrived for: server/usage/
closed_days.py).

Goal: p95 under 50 ms for every endpoint. Wall-clock figures on a shared machine (the server,
PostgreSQL and this client share its cores): compare the lines of one run.
PostgreSQL: HASHGRID_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/test.
"""

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from hashgrid.common.net import free_port
from hashgrid.common.secrets import hash_secret

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support import postgres

ADMIN_TOKEN = "hg_admin_bench-tenancy"
PASSWORD = "bench-tenancy-password"
GOAL_P95_MS = 50.0
CUSTOMERS, OPERATORS = 150, 50
SITES_PER_OPERATOR, NODES_PER_SITE = 4, 10
KEYS = 10_000
DAYS = 60
REGIONS = ["us-east", "us-south", "us-west", "eu-west", "eu-north", "ap-east"]
MODELS = ["llama-3.1-8b", "llama-3.1-70b", "qwen2.5-7b", "qwen2.5-32b", "mistral-7b",
          "gemma-2-9b", "phi-3-mini", "deepseek-r1-distill"]  # fmt: skip
CHUNK = 100_000  # records generated and copied at a time
BIGGEST, MEDIAN = 0, CUSTOMERS // 2  # customers' ranks in the traffic's skew


def new_id() -> str:
    return uuid.uuid4().hex


class Server:
    """One `hashgrid server` process on the bench's database."""

    def __init__(self, database_url: str, home: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = home / "server.log"
        env = {
            **os.environ,
            "HASHGRID_HOME": str(home),
            "HASHGRID_DATABASE_URL": database_url,
            "HASHGRID_BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
            "HASHGRID_LOG_LEVEL": "warning",
            "NO_COLOR": "1",
        }
        home.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hashgrid", "server", "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 120
        while not self._healthy():
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited:\n{self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit("server did not start")
            time.sleep(0.2)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def sign_up(url: str, organization: str, kind: str) -> str:
    """The new organization's admin's personal token."""
    body = {"email": f"admin@{organization}.bench", "password": PASSWORD,
            "organization": organization, "kind": kind}  # fmt: skip
    r = httpx.post(f"{url}/api/v1/signup", json=body, timeout=30)
    r.raise_for_status()
    return str(r.json()["token"])


async def copy(conn: asyncpg.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    records = [tuple(row[c] for c in columns) for row in rows]
    await conn.copy_records_to_table(table, records=records, columns=columns)


def fingerprint(name: str) -> str:
    """A plausible 8-GPU node, as its agent reports it."""
    gpu = {"name": "NVIDIA H100 80GB HBM3", "memory_total_bytes": 85_899_345_920,
           "memory_free_bytes": 85_000_000_000}  # fmt: skip
    gpus = [{"index": i, "uuid": f"GPU-{name}-{i}", **gpu} for i in range(8)]
    node = {"hostname": name, "os": "Linux", "arch": "x86_64", "cpu_model": "AMD EPYC 9654",
            "cpu_count": 192, "memory_total_bytes": 2_199_023_255_552,
            "memory_available_bytes": 2_000_000_000_000, "gpus": gpus,
            "gpu_driver": "550.54.15"}  # fmt: skip
    return json.dumps(node)


async def load(dsn: str, records: int, now: datetime) -> dict[str, Any]:
    """Everything but the signed-up organizations and their admins; what the timings need."""
    conn = await asyncpg.connect(dsn)
    try:
        org_ids = dict(await conn.fetch("SELECT name, id FROM organizations"))
        orgs = []
        for kind, prefix, count in (("customer", "c", CUSTOMERS), ("operator", "o", OPERATORS)):
            for i in range(count):
                name = f"{prefix}-{i:03d}"
                if name not in org_ids:
                    org_ids[name] = new_id()
                    orgs.append({"id": org_ids[name], "name": name, "kind": kind,
                                 "created_at": now - timedelta(days=90)})  # fmt: skip
        await copy(conn, "organizations", orgs)
        customers = [org_ids[f"c-{i:03d}"] for i in range(CUSTOMERS)]
        operators = [org_ids[f"o-{i:03d}"] for i in range(OPERATORS)]

        sites, nodes = [], []
        for o, operator in enumerate(operators):
            for s in range(SITES_PER_OPERATOR):
                name = f"site-{o:03d}-{s}"
                site = {"id": new_id(), "name": name, "operator_id": operator,
                        "region": REGIONS[(o + s) % len(REGIONS)], "country": "US",
                        "power_mw": 20.0, "created_at": now - timedelta(days=80)}  # fmt: skip
                sites.append(site)
                for n in range(NODES_PER_SITE):
                    node = f"{name}-n{n:02d}"
                    nodes.append({"id": new_id(), "name": node, "site_id": site["id"],
                                  "status": "lost", "credential_hash": hash_secret(new_id()),
                                  "fingerprint": fingerprint(node),
                                  "capacity_bytes": 8 * 85_899_345_920,
                                  "joined_at": now - timedelta(days=70),
                                  "status_changed_at": now - timedelta(days=1),
                                  "last_seen_at": now - timedelta(days=1)})  # fmt: skip
        await copy(conn, "sites", sites)
        await copy(conn, "nodes", nodes)
        site_name = {s["id"]: s["name"] for s in sites}

        made = now - timedelta(days=75)
        keys = [{"id": new_id(), "customer_id": customers[i % CUSTOMERS], "name": f"key-{i}",
                 "key_hash": hash_secret(new_id()), "prefix": "sk-hg-bnch",
                 "created_at": made + timedelta(seconds=i)} for i in range(KEYS)]  # fmt: skip
        await copy(conn, "api_keys", keys)
        keys_of: dict[str, list[str]] = {c: [] for c in customers}
        for k in keys:
            keys_of[k["customer_id"]].append(k["id"])

        weights = [1 / (rank + 1) for rank in range(CUSTOMERS)]  # Zipf: rank r sends ~1/(r+1)
        start = now - timedelta(days=DAYS)
        span_s = DAYS * 86400
        for first in range(0, records, CHUNK):
            count = min(CHUNK, records - first)
            # This chunk's share of the 60 days, in time order, as gateways ship records.
            offsets = sorted(random.uniform(first, first + count) for _ in range(count))
            who = random.choices(customers, weights, k=count)
            served = random.choices(nodes, k=count)
            rows = []
            for i in range(count):
                customer, node = who[i], served[i]
                prompt, completion = random.randint(20, 4000), random.randint(1, 1000)
                started = start + timedelta(seconds=offsets[i] * span_s / records)
                rows.append({
                    "request_id": f"req-{first + i:08d}-{new_id()[:8]}",
                    "key_id": random.choice(keys_of[customer]), "customer_id": customer,
                    "model": random.choice(MODELS), "endpoint": "/v1/chat/completions",
                    "replica_id": new_id(), "node_id": node["id"],
                    "site": site_name[node["site_id"]], "status_code": 200,
                    "prompt_tokens": prompt, "completion_tokens": completion,
                    "cost_pico": prompt * 200_000 + completion * 600_000, "ttft_ms": 80.0,
                    "duration_ms": 900.0, "started_at": started,
                    "received_at": started + timedelta(seconds=1),
                })  # fmt: skip
            await copy(conn, "usage_records", rows)
            print(f"  {first + count:>9,} usage records", flush=True)
        return {"customers": customers, "operators": operators}
    finally:
        await conn.close()


async def vacuum(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def timed(http: httpx.Client, path: str, params: Any, n: int) -> tuple[float, list[float], int]:
    """Milliseconds of the first call (a summary's closed days not kept yet), then of `n` calls
    one after another after a warm-up; the rows one answered."""
    began = time.perf_counter()
    http.get(path, params=params).raise_for_status()
    first = (time.perf_counter() - began) * 1000
    for _ in range(max(10, n // 10)):
        r = http.get(path, params=params)
        r.raise_for_status()
    rows = len(r.json()) if isinstance(r.json(), list) else 1
    times = []
    for _ in range(n):
        began = time.perf_counter()
        r = http.get(path, params=params)
        times.append((time.perf_counter() - began) * 1000)
        r.raise_for_status()
    return first, times, rows


def cases(now: datetime) -> Iterator[tuple[str, str, str, Any]]:
    """(who, what, path, query) of each timing."""
    month = {"group_by": "day"}
    last_30_days = {"group_by": "day", "since": (now - timedelta(days=30)).isoformat()}
    for who in ("biggest customer", "median customer"):
        yield who, "me (the floor: auth alone)", "/api/v1/me", {}
        yield who, "keys", "/api/v1/keys", {}
        yield who, "usage, newest 100", "/api/v1/usage", {"limit": 100}
        yield who, "summary, this month by day", "/api/v1/usage/summary", month
        yield (
            who,
            "summary, this month by model+key",
            "/api/v1/usage/summary",
            {"group_by": ["model", "key"]},
        )
        yield who, "summary, last 30 days by day", "/api/v1/usage/summary", last_30_days
    who = "operator"
    yield who, "me (the floor: auth alone)", "/api/v1/me", {}
    yield who, "nodes", "/api/v1/nodes", {}
    yield who, "sites", "/api/v1/sites", {}
    yield who, "usage its nodes served, newest 100", "/api/v1/usage", {"limit": 100}
    yield who, "summary, this month by day", "/api/v1/usage/summary", month
    yield (
        who,
        "summary, this month by region+model",
        "/api/v1/usage/summary",
        {"group_by": ["region", "model"]},
    )
    yield who, "summary, last 30 days by day", "/api/v1/usage/summary", last_30_days


def percentile(times: list[float], p: float) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[round(p) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--n", type=int, default=200, help="timed calls per endpoint")
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp, postgres.fresh_database("hg_bench_tenancy") as db:
        url, dsn = postgres.sqlalchemy_url(db), postgres.ADMIN_URL.rsplit("/", 1)[0] + f"/{db}"
        port = free_port()
        server = Server(url, Path(tmp) / "home", port)
        try:
            tokens = {
                "biggest customer": sign_up(server.url, f"c-{BIGGEST:03d}", "customer"),
                "median customer": sign_up(server.url, f"c-{MEDIAN:03d}", "customer"),
                "operator": sign_up(server.url, "o-000", "operator"),
            }
        finally:
            server.stop()
        began = time.perf_counter()
        print(f"loading {args.records:,} usage records, {KEYS:,} keys, "
              f"{OPERATORS * SITES_PER_OPERATOR * NODES_PER_SITE:,} nodes ...")  # fmt: skip
        asyncio.run(load(dsn, args.records, now))
        asyncio.run(vacuum(dsn))
        print(f"loaded and vacuumed in {time.perf_counter() - began:.0f} s")
        server = Server(url, Path(tmp) / "home", port)
        try:
            print(f"\n{'caller':17} {'endpoint':38} {'rows':>5} {'first':>7} {'p50':>7} "
                  f"{'p95':>7} {'p99':>7}  p95 < {GOAL_P95_MS:.0f} ms")  # fmt: skip
            for who, what, path, params in cases(now):
                headers = {"authorization": f"Bearer {tokens[who]}"}
                with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
                    first, times, rows = timed(http, path, params, args.n)
                p50, p95, p99 = (percentile(times, p) for p in (50, 95, 99))
                verdict = "yes" if p95 < GOAL_P95_MS else "NO"
                print(f"{who:17} {what:38} {rows:>5} {first:7.1f} {p50:7.1f} {p95:7.1f} "
                      f"{p99:7.1f}  {verdict}")  # fmt: skip
        finally:
            server.stop()


if __name__ == "__main__":
    main()
