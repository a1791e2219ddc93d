"""List endpoints page with cursors and filter in the database, on SQLite and PostgreSQL: a walk
through the pages meets every row once, in the list's order, while rows are added; filters and
scoping hold on every page; a cursor the server did not make is a 400. The usage summary sums
what the caller sees."""

import asyncio
import base64
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import cycle
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from hashgrid.server.db.base import utcnow
from hashgrid.server.db.engine import make_engine
from hashgrid.server.deployments.tables import Replica
from hashgrid.server.pages import encode

from support.live import LiveServer

PASSWORD = "correct horse battery"
PRICE_PROMPT = "10000"  # USD per million tokens: a cent a token
PRICE_COMPLETION = "5000"
MONTH = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass
class World:
    """Two customers and two operators, each through its own admin's token, with keys, sites,
    nodes, models and usage records spread over them."""

    server: LiveServer
    tokens: dict[str, str] = field(default_factory=dict)  # organization -> its admin's token
    org_ids: dict[str, str] = field(default_factory=dict)
    keys: dict[str, list[str]] = field(default_factory=dict)  # customer -> key ids, oldest first
    nodes: dict[str, str] = field(default_factory=dict)  # node id -> its site
    records: list[dict[str, Any]] = field(default_factory=list)
    gateway: str = ""

    def http(self, organization: str | None = None) -> httpx.Client:
        """A client as the organization's admin (None: as the platform admin)."""
        if organization is None:
            return self.server.http()
        return self.server.http(self.tokens[organization])

    def send(self, records: list[dict[str, Any]]) -> None:
        with self.server.http(self.gateway) as gw:
            r = gw.post("/api/v1/gateway/usage", json={"records": records})
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == len(records)
        self.records += records


SITES = {
    "x-east": ("xop", "us-east"),
    "x-south": ("xop", "sa-east"),
    "x-west": ("xop", "eu-west"),
    "y-east": ("yop", "us-east"),
}
NODES = {"x-east-1": "x-east", "x-east-2": "x-east", "x-west-1": "x-west", "y-east-1": "y-east"}


def _at(moment: datetime) -> str:
    return moment.isoformat()


def record(world: World, i: int, customer: str, node: str | None, **changes: Any) -> dict[str, Any]:
    keys = world.keys[customer]
    return {
        "request_id": f"r{i:04d}", "key_id": keys[i % len(keys)],
        "customer_id": world.org_ids[customer], "model": ("m-a", "m-b")[i % 2],
        "endpoint": "/v1/chat/completions", "replica_id": None, "node_id": node,
        "site": world.nodes[node] if node else None, "status_code": 200,
        "prompt_tokens": 3 + i, "completion_tokens": 2 * i, "ttft_ms": 1.0, "duration_ms": 2.0,
        # two records in each 5-hour step: the order's tie on started_at is broken by request id
        "started_at": _at(MONTH + timedelta(hours=5 * (i // 2))), **changes,
    }  # fmt: skip


@pytest.fixture
def world(server: LiveServer) -> World:
    w = World(server)
    with server.http(token=None) as anonymous:
        for org, kind in (("acme", "customer"), ("globex", "customer"), ("xop", "operator"),
                          ("yop", "operator")):  # fmt: skip
            body = {"email": f"admin@{org}.test", "password": PASSWORD, "organization": org,
                    "kind": kind}  # fmt: skip
            signed = anonymous.post("/api/v1/signup", json=body).json()
            w.tokens[org] = signed["token"]
    with w.http() as admin:
        w.org_ids = {o["name"]: o["id"] for o in admin.get("/api/v1/organizations").json()}
        w.gateway = admin.post("/api/v1/tokens", json={"name": "gw", "role": "gateway"}).json()[
            "token"
        ]
        for name in ("m-a", "m-b", "m-c"):
            model = {"name": name, "source": f"/nowhere/{name}.gguf", "size_bytes": 1}
            assert admin.post("/api/v1/models", json=model).status_code == 201
            deployment = {"model": name, "replicas": 0}
            assert admin.post("/api/v1/deployments", json=deployment).status_code == 201
            price = {"model": name, "prompt": PRICE_PROMPT, "completion": PRICE_COMPLETION,
                     "effective_from": "2000-01-01T00:00:00Z"}  # fmt: skip
            assert admin.post("/api/v1/prices", json=price).status_code == 201
    for site, (operator, region) in SITES.items():
        body = {"name": site, "region": region, "country": "US", "power_mw": 1}
        with w.http(operator) as http:
            assert http.post("/api/v1/sites", json=body).status_code == 201
    for name, site in NODES.items():
        with server.join_node(site, name) as node:
            w.nodes[node.headers["x-node-id"]] = site
    for customer, count in (("acme", 5), ("globex", 3)):
        with w.http(customer) as http:
            w.keys[customer] = [
                http.post("/api/v1/keys", json={"name": f"k{i}"}).json()["id"] for i in range(count)
            ]
    node_ids = list(w.nodes)
    w.send(
        [
            record(w, i, ("acme", "globex")[i % 3 == 0], node_ids[i % len(node_ids)])
            for i in range(14)
        ]
        + [record(w, 14, "acme", None)]  # served by no known node: in no operator's usage
    )
    return w


def walk(http: httpx.Client, path: str, limit: int, **params: Any) -> tuple[list[Any], int]:
    """Every item of a list, following its `Link` from page to page; and how many pages."""
    items: list[Any] = []
    r = http.get(path, params={**params, "limit": limit})
    pages = 0
    while True:
        assert r.status_code == 200, r.text
        assert len(r.json()) <= limit
        items += r.json()
        pages += 1
        if "next" not in r.links:
            assert "x-next-cursor" not in r.headers
            return items, pages
        assert httpx.URL(r.links["next"]["url"]).params["cursor"] == r.headers["x-next-cursor"]
        r = http.get(r.links["next"]["url"])


# (who calls, the path, its filters, the field that names an item)
LISTS = [
    (None, "/api/v1/organizations", {}, "name"),
    (None, "/api/v1/keys", {}, "id"),
    ("acme", "/api/v1/keys", {}, "id"),
    (None, "/api/v1/sites", {}, "name"),
    ("xop", "/api/v1/sites", {}, "name"),
    (None, "/api/v1/nodes", {}, "id"),
    ("xop", "/api/v1/nodes", {}, "id"),
    ("acme", "/api/v1/models", {}, "name"),
    (None, "/api/v1/usage", {}, "request_id"),
    ("acme", "/api/v1/usage", {}, "request_id"),
    ("xop", "/api/v1/usage", {}, "request_id"),
    ("acme", "/api/v1/usage", {"model": "m-a"}, "request_id"),
    ("acme", "/api/v1/me/tokens", {}, "id"),
    ("acme", "/api/v1/organizations/acme/members", {}, "email"),
    (None, "/api/v1/usage/rejected", {}, "record"),
    (None, "/api/v1/replicas", {}, "id"),
]


def add_replicas(world: World, count: int) -> None:
    """Replica rows on the world's nodes, as placement stores them, two to a creation time: the
    list's tie on `created_at` is broken by id. (Placing real replicas needs engines.)"""

    async def insert() -> None:
        engine = make_engine(world.server.settings.resolved_database_url())
        made = utcnow()
        async with async_sessionmaker(engine)() as session:
            for i, node in zip(range(count), cycle(world.nodes), strict=False):
                session.add(Replica(deployment_id="d", node_id=node, memory_bytes=1,
                                    created_at=made - timedelta(seconds=i // 2)))  # fmt: skip
            await session.commit()
        await engine.dispose()

    asyncio.run(insert())


def test_every_list_walked_in_pages_gives_the_rows_of_one_page_once_each_in_order(
    world: World,
) -> None:
    with world.http("acme") as acme:  # tokens and members to page through
        for i in range(2):
            assert acme.post("/api/v1/me/tokens", json={"name": f"t{i}"}).status_code == 201
            code = acme.post("/api/v1/organizations/acme/invites", json={}).json()["code"]
            body = {"code": code, "email": f"m{i}@acme.test", "password": PASSWORD}
            assert acme.post("/api/v1/invites/accept", json=body).status_code == 200
    with world.http() as admin:  # records a gateway sent that were no usage records
        bad = [{"request_id": f"bad-{i}"} for i in range(5)]
        r = admin.post("/api/v1/gateway/usage", json={"records": bad})
        assert r.json()["rejected"] == len(bad)
    add_replicas(world, 7)
    for who, path, params, name in LISTS:
        with world.http(who) as http:
            whole = http.get(path, params={**params, "limit": 1000})
            assert "next" not in whole.links
            walked, pages = walk(http, path, 2, **params)
        names = [item[name] for item in walked]
        assert len(names) > 2, f"{path} as {who}: too few rows to page"
        assert names == [item[name] for item in whole.json()], f"{path} as {who}"
        assert len(set(names)) == len(names)
        assert pages == (len(names) + 1) // 2


def test_keys_added_while_walking_are_met_once_after_those_before(world: World) -> None:
    seen: list[str] = []
    added: list[str] = []
    with world.http("acme") as acme:
        r = acme.get("/api/v1/keys", params={"limit": 2})
        while True:
            seen += [k["id"] for k in r.json()]
            if "next" not in r.links:
                break
            if len(added) < 4:  # a key made between two pages comes after every key before it
                added.append(acme.post("/api/v1/keys", json={"name": "late"}).json()["id"])
            r = acme.get(r.links["next"]["url"])
    assert seen == world.keys["acme"] + added


def test_usage_walked_newest_first_skips_newer_records_and_meets_older_ones(world: World) -> None:
    before = sorted(
        (r for r in world.records if r["customer_id"] == world.org_ids["acme"]),
        key=lambda r: (r["started_at"], r["request_id"]),
        reverse=True,
    )
    node = next(iter(world.nodes))
    newer, older, seen = [], [], []
    with world.http("acme") as acme:
        r = acme.get("/api/v1/usage", params={"limit": 3})
        while True:
            seen += [u["request_id"] for u in r.json()]
            if "next" not in r.links:
                break
            i = 100 + len(newer)
            newer.append(record(world, i, "acme", node, started_at=_at(MONTH + timedelta(days=20))))
            older.append(record(world, i + 50, "acme", node, started_at=_at(MONTH - timedelta(i))))
            world.send([newer[-1], older[-1]])
            r = acme.get(r.links["next"]["url"])
    # The newer records sort before the cursor: a walk already past them never meets them.
    assert seen == [r["request_id"] for r in before + older]


def test_filters_choose_rows_in_the_database(world: World) -> None:
    acme_keys = world.keys["acme"]
    with world.http("acme") as acme:
        assert acme.delete(f"/api/v1/keys/{acme_keys[1]}").status_code == 204
        assert [k["id"] for k in acme.get("/api/v1/keys", params={"revoked": True}).json()] == [
            acme_keys[1]
        ]
        live = acme.get("/api/v1/keys", params={"revoked": "false"}).json()
        assert [k["id"] for k in live] == [k for k in acme_keys if k != acme_keys[1]]
        mine = [u for u in world.records if u["customer_id"] == world.org_ids["acme"]]
        for params, chosen in (
            ({"model": "m-b"}, [u for u in mine if u["model"] == "m-b"]),
            ({"key_id": acme_keys[0]}, [u for u in mine if u["key_id"] == acme_keys[0]]),
            (
                {"since": (MONTH + timedelta(hours=10)).isoformat(),
                 "until": (MONTH + timedelta(hours=25)).isoformat()},
                [u for u in mine if MONTH + timedelta(hours=10) <= datetime.fromisoformat(
                    u["started_at"]) < MONTH + timedelta(hours=25)],
            ),
        ):  # fmt: skip
            listed = acme.get("/api/v1/usage", params=params).json()
            assert {u["request_id"] for u in listed} == {u["request_id"] for u in chosen}, params
            assert chosen
    with world.http() as admin:
        by_customer = admin.get("/api/v1/keys", params={"customer": "globex"}).json()
        assert [k["id"] for k in by_customer] == world.keys["globex"]
        in_east = admin.get("/api/v1/sites", params={"region": "us-east"}).json()
        assert [s["name"] for s in in_east] == ["x-east", "y-east"]
        of_yop = admin.get("/api/v1/sites", params={"operator": "yop"}).json()
        assert [s["name"] for s in of_yop] == ["y-east"]
        at_x_east = admin.get("/api/v1/nodes", params={"site": "x-east"}).json()
        assert [n["name"] for n in at_x_east] == ["x-east-1", "x-east-2"]
        ready = admin.get("/api/v1/nodes", params={"status": "ready"}).json()
        lost = admin.get("/api/v1/nodes", params={"status": "lost"}).json()
        assert sorted(n["name"] for n in ready + lost) == sorted(NODES)
        assert {n["status"] for n in ready} <= {"ready"}
        assert {n["status"] for n in lost} <= {"lost"}
        customers = admin.get("/api/v1/organizations", params={"kind": "customer"}).json()
        assert [o["name"] for o in customers] == ["acme", "globex"]
    with world.http("xop") as xop:
        assert xop.get("/api/v1/sites", params={"operator": "yop"}).json() == []


BAD_FILTERS: list[tuple[str, dict[str, Any]]] = [
    ("/api/v1/keys", {"revoked": "maybe"}),
    ("/api/v1/keys", {"customer": "a\x00b"}),
    ("/api/v1/nodes", {"status": "asleep"}),
    ("/api/v1/sites", {"region": "r" * 101}),
    ("/api/v1/organizations", {"kind": "miner"}),
    ("/api/v1/usage", {"since": "2026-11-01T00:00:00"}),  # no zone
    ("/api/v1/usage", {"until": "yesterday"}),
    ("/api/v1/usage", {"limit": 0}),
    ("/api/v1/keys", {"limit": 1001}),
    ("/api/v1/usage", {"cursor": "not base64!"}),
    ("/api/v1/usage/summary", {"group_by": "week"}),
    ("/api/v1/usage/summary", {"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}),
    ("/api/v1/usage/summary", {"since": "2024-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
]

FORGED_CURSORS = [
    ("/api/v1/usage", base64.urlsafe_b64encode(b"hello").decode()),  # not JSON
    ("/api/v1/usage", encode("2026-11-01T00:00:00+00:00")),  # one value, two wanted
    ("/api/v1/usage", encode("monday", "r0001")),  # not a time
    ("/api/v1/usage", encode("2026-11-01T00:00:00", "r0001")),  # a time with no zone
    ("/api/v1/usage", encode("2026-11-01T00:00:00+00:00", 7)),  # a number for an id
    ("/api/v1/keys", encode(3, "k")),
    ("/api/v1/sites", encode(["x-east"])),
    ("/api/v1/nodes", encode({"name": "x"})),
]


def test_a_bad_filter_is_a_422_problem_and_a_forged_cursor_a_400(world: World) -> None:
    with world.http() as admin:
        for path, params in BAD_FILTERS:
            r = admin.get(path, params=params)
            assert r.status_code == 422, (path, params, r.text)
            assert r.headers["content-type"] == "application/problem+json"
        for path, cursor in FORGED_CURSORS:
            r = admin.get(path, params={"cursor": cursor})
            assert r.status_code == 400, (path, cursor, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert "cursor" in r.json()["detail"]


def test_scoping_holds_on_every_page(world: World) -> None:
    acme_id, globex_id = world.org_ids["acme"], world.org_ids["globex"]
    x_nodes = {n for n, site in world.nodes.items() if SITES[site][0] == "xop"}
    with world.http("acme") as acme:
        usage, pages = walk(acme, "/api/v1/usage", 1)
        assert pages > 2
        assert {u["customer_id"] for u in usage} == {acme_id}
        keys, _ = walk(acme, "/api/v1/keys", 1)
        assert {k["customer_id"] for k in keys} == {acme_id}
        # Another customer's cursor only says where to start: its rows stay its own.
        cursor = acme.get("/api/v1/usage", params={"limit": 1}).headers["x-next-cursor"]
        assert acme.get("/api/v1/keys", params={"customer": "globex"}).json() == []
    with world.http("globex") as globex:
        theirs = globex.get("/api/v1/usage", params={"cursor": cursor}).json()
        assert theirs
        assert {u["customer_id"] for u in theirs} == {globex_id}
    with world.http("xop") as xop:
        served, pages = walk(xop, "/api/v1/usage", 1)
        assert pages > 2
        assert {u["node_id"] for u in served} == x_nodes
        assert len(served) == sum(r["node_id"] in x_nodes for r in world.records)
        nodes, _ = walk(xop, "/api/v1/nodes", 1)
        assert {n["id"] for n in nodes} == x_nodes
        sites, _ = walk(xop, "/api/v1/sites", 1)
        assert [s["name"] for s in sites] == ["x-east", "x-south", "x-west"]


def _expected_summary(
    records: list[dict[str, Any]], groups: list[str], region: dict[str | None, str | None]
) -> list[dict[str, Any]]:
    def group_of(r: dict[str, Any]) -> tuple[Any, ...]:
        values = {
            "day": r["started_at"][:10], "model": r["model"], "key_id": r["key_id"],
            "region": region[r["site"]],
        }  # fmt: skip
        return tuple(values[g] for g in groups)

    sums: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0, Decimal(0)])
    for r in records:
        s = sums[group_of(r)]
        s[0] += 1
        s[1] += r["prompt_tokens"]
        s[2] += r["completion_tokens"]
        s[3] += Decimal(r["prompt_tokens"]) / 100 + Decimal(r["completion_tokens"]) / 200
    return [
        {**dict(zip(groups, g, strict=True)), "requests": s[0], "prompt_tokens": s[1],
         "completion_tokens": s[2], "cost_usd": s[3]}
        for g, s in sorted(sums.items(), key=lambda kv: tuple((v is None, v) for v in kv[0]))
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("who", "group_by"),
    [
        ("acme", ["day"]),
        ("acme", ["model", "key"]),
        ("xop", ["region", "day"]),
        ("acme", ["region"]),
        (None, ["model", "region", "key", "day"]),
    ],
)
def test_the_usage_summary_sums_what_the_caller_sees_by_its_groups(
    world: World, who: str | None, group_by: list[str]
) -> None:
    region = {site: SITES[site][1] for site in SITES} | {None: None}
    if who is None:
        visible = world.records
    elif who == "xop":
        visible = [r for r in world.records if r["site"] and SITES[r["site"]][0] == "xop"]
    else:
        visible = [r for r in world.records if r["customer_id"] == world.org_ids[who]]
    groups = ["key_id" if g == "key" else g for g in group_by]
    with world.http(who) as http:
        summary = http.get("/api/v1/usage/summary", params={"group_by": group_by}).json()
    exact = [{**g, "cost_usd": Decimal(g["cost_usd"])} for g in summary]
    assert exact == _expected_summary(visible, groups, region)


def test_the_usage_summary_filters_and_takes_a_window(world: World) -> None:
    acme = [r for r in world.records if r["customer_id"] == world.org_ids["acme"]]
    key = world.keys["acme"][2]
    last_month = record(world, 99, "acme", None, started_at=_at(MONTH - timedelta(hours=1)))
    world.send([last_month])
    with world.http("acme") as http:
        this_month = http.get("/api/v1/usage/summary", params={"group_by": "model"}).json()
        assert sum(g["requests"] for g in this_month) == len(acme)
        window = {"since": _at(MONTH - timedelta(days=1)), "until": _at(MONTH)}
        before = http.get("/api/v1/usage/summary", params={**window, "group_by": "model"}).json()
        assert [(g["model"], g["requests"]) for g in before] == [(last_month["model"], 1)]
        params = {"model": "m-a", "key_id": key, "group_by": ["model", "key"]}
        [only] = http.get("/api/v1/usage/summary", params=params).json()
    chosen = [r for r in acme if r["model"] == "m-a" and r["key_id"] == key]
    assert (only["model"], only["key_id"], only["requests"]) == ("m-a", key, len(chosen))
    assert set(only) == {"model", "key_id", "requests", "prompt_tokens", "completion_tokens",
                         "cost_usd"}  # fmt: skip


def test_a_late_record_of_a_closed_day_is_counted_in_the_next_summary(world: World) -> None:
    """The sums of closed days are kept between summaries; a record of such a day that arrives
    late (a gateway's spool drained after an outage) drops them, and the next summary counts it."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window = {
        "since": _at(today - timedelta(days=10)),
        "until": _at(datetime.now(UTC) + timedelta(minutes=1)),
        "group_by": "day",
    }
    late = today - timedelta(days=3)
    with world.http("acme") as http:

        def by_day() -> dict[str, int]:
            answer = http.get("/api/v1/usage/summary", params=window)
            assert answer.status_code == 200, answer.text
            return {g["day"]: g["requests"] for g in answer.json()}

        before = by_day()
        assert by_day() == before  # the second from the kept sums
        world.send([record(world, 200, "acme", None, started_at=_at(late + timedelta(hours=1)))])
        after = by_day()
    day = late.date().isoformat()
    assert after == before | {day: before.get(day, 0) + 1}
