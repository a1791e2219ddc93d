"""Invoices, statements, payouts and the ledger on a live control plane, on SQLite and
PostgreSQL. Usage goes in the way gateways send it (`POST /api/v1/gateway/usage`, a gateway
token) and is priced by the real ingest from the price book (`POST /api/v1/prices`), so what is
checked is what a customer and an operator would read."""

import csv
import io
import itertools
import threading
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from hashgrid.billing.money import UnitPrices, price_of, usd
from hashgrid.contracts.api.access import TokenCreate
from hashgrid.contracts.api.billing import InvoiceDetail, InvoiceIssue, ShareSet
from hashgrid.contracts.api.catalog import ModelCreate
from hashgrid.contracts.api.deployments import DeploymentCreate
from hashgrid.contracts.api.keys import KeyCreate
from hashgrid.contracts.api.organizations import OrganizationCreate
from hashgrid.contracts.api.sites import SiteCreate

from support.accounts import sign_up
from support.cli import ok, server_env
from support.live import LiveServer, server_settings, wait_until

OCT, NOV, DEC = "2026-10", "2026-11", "2026-12"
MODEL = "llama"
FIRST = {"prompt": "0.50", "cached": "0.25", "completion": "1.50"}  # from October 1st
SECOND = {"prompt": "0.70", "cached": "0.35", "completion": "2.10"}  # from November 15th
CENT = Decimal("0.01")


def prices(sheet: dict[str, str]) -> UnitPrices:
    return UnitPrices(
        price_of(sheet["prompt"]), price_of(sheet["cached"]), price_of(sheet["completion"])
    )


def at(text: str) -> str:
    """A time in November 2026 (or another month, when the text says): `11-10T12:00`."""
    return f"2026-{text}:00Z"


def ok_json(response: httpx.Response) -> Any:
    assert response.is_success, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json()


class Billing:
    """On `server`: operators X (70%, the default) and Y (80%), a site and a node each; customers
    acme and globex signed up (their admins' tokens), a key each; a firm deployment of `MODEL`
    priced at FIRST from October 1st and SECOND from November 15th; a gateway token."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.admin = server.client()
        self.http = server.http()
        self._ids = itertools.count(1)
        for operator, site in [("op-x", "site-x"), ("op-y", "site-y")]:
            self.admin.create_organization(OrganizationCreate(name=operator, kind="operator"))
            self.admin.create_site(
                SiteCreate(name=site, region="us", country="US", power_mw=1.0, operator=operator)
            )
        ok_json(self.http.put("/api/v1/organizations/op-y/share", json={"share_bps": 8000}))
        self.node_x = server.join_node("site-x", "node-x").headers["x-node-id"]
        self.node_y = server.join_node("site-y", "node-y").headers["x-node-id"]
        self.tokens = {name: sign_up(server, name) for name in ("acme", "globex")}
        self.customers = {name: self.admin.get_organization(name).id for name in self.tokens}
        self.keys = {
            name: self.admin.create_key(KeyCreate(customer=name)).id for name in self.tokens
        }
        self.add_model(MODEL)
        self.price(MODEL, FIRST, "2026-10-01T00:00:00Z")
        self.price(MODEL, SECOND, "2026-11-15T00:00:00Z")
        self.gateway = self.admin.create_token(TokenCreate(name="gw", role="gateway")).token

    def close(self) -> None:
        self.admin.close()
        self.http.close()

    def add_model(self, name: str) -> None:
        self.admin.add_model(ModelCreate(name=name, source=f"/nowhere/{name}.gguf", size_bytes=1))
        self.admin.deploy(DeploymentCreate(model=name, replicas=0, tier="firm"))

    def price(self, model: str, sheet: dict[str, str], effective_from: str) -> None:
        body = {"model": model, **sheet, "effective_from": effective_from}
        ok_json(self.http.post("/api/v1/prices", json=body))

    def use(
        self,
        customer: str,
        node: str | None,
        started_at: str,
        prompt: int,
        completion: int,
        cached: int = 0,
        model: str = MODEL,
    ) -> str:
        """A request of `customer` served by `node`, stored as a gateway sends it: its id."""
        request_id = f"req-{next(self._ids)}"
        record = {
            "request_id": request_id, "key_id": self.keys[customer],
            "customer_id": self.customers[customer], "model": model,
            "endpoint": "/v1/chat/completions", "replica_id": None, "node_id": node,
            "site": None, "status_code": 200, "prompt_tokens": prompt,
            "completion_tokens": completion, "cached_tokens": cached, "ttft_ms": 1.0,
            "duration_ms": 2.0, "started_at": started_at,
        }  # fmt: skip
        with self.server.http(self.gateway) as gw:
            ack = ok_json(gw.post("/api/v1/gateway/usage", json={"records": [record]}))
        assert ack["accepted"] == 1, ack
        return request_id

    def issue(self, customer: str, period: str) -> InvoiceDetail:
        return self.admin.issue_invoice(InvoiceIssue(customer=customer, period=period))

    def as_customer(self, name: str) -> httpx.Client:
        return self.server.http(self.tokens[name])


@pytest.fixture
def billing(server: LiveServer) -> Any:
    world = Billing(server)
    yield world
    world.close()


def billed(exact: Decimal) -> Decimal:
    return exact.quantize(CENT, ROUND_HALF_EVEN)


def assert_recomputed_to_the_cent(world: Billing, number: str) -> None:
    again = world.admin.recompute_invoice(number)
    assert again.difference_cents == 0
    assert again.stored_total_usd == again.recomputed_total_usd
    assert again.lines
    assert all(line.difference_cents == 0 for line in again.lines)


def test_a_price_change_mid_month_bills_each_record_at_the_price_it_started_at_to_the_cent(
    billing: Billing,
) -> None:
    w = billing
    w.use("acme", w.node_x, at("11-10T12:00"), 1_234_567, 345_679, cached=234_567)
    w.use("acme", w.node_x, at("11-14T23:59"), 1_000_001, 1_001)
    w.use("acme", w.node_y, at("11-15T00:00"), 2_345_678, 456_789)
    invoice = w.issue("acme", NOV)

    assert invoice.number == "HG-2026-000001"
    assert invoice.status == "issued"
    completions = [line for line in invoice.lines if line.unit == "completion tokens"]
    assert [(c.quantity, c.unit_price_usd) for c in completions] == [
        (345_679 + 1_001, Decimal("0.0000015")),
        (456_789, Decimal("0.0000021")),
    ]
    first, second = prices(FIRST), prices(SECOND)
    exact = first.cost(1_234_567, 234_567, 345_679) + first.cost(1_000_001, 0, 1_001)
    exact += second.cost(2_345_678, 0, 456_789)
    assert sum(line.amount_usd for line in invoice.lines) == usd(exact)
    assert all(line.billed_usd == billed(line.amount_usd) for line in invoice.lines)
    assert invoice.subtotal_usd == sum(line.billed_usd for line in invoice.lines)
    assert invoice.total_usd == invoice.subtotal_usd
    assert {line.kind for line in invoice.lines} == {"usage"}
    assert_recomputed_to_the_cent(w, invoice.number)
    assert w.admin.get_invoice(invoice.number) == invoice


def test_a_record_stored_after_its_month_was_invoiced_goes_on_the_next_invoice_as_an_adjustment(
    billing: Billing,
) -> None:
    w = billing
    w.use("acme", w.node_x, at("10-20T08:00"), 1_000_000, 200_000)
    w.use("acme", w.node_x, at("11-02T08:00"), 3_000_000, 100_000)
    october = w.issue("acme", OCT)
    assert october.total_usd == Decimal("0.80")  # $0.50 + $0.30: November's record is not on it
    w.use("acme", w.node_y, at("10-31T23:59"), 2_000_000, 0)  # a gateway's spool, drained late

    assert w.admin.get_invoice(october.number) == october  # issued: never changed
    assert_recomputed_to_the_cent(w, october.number)
    draft = w.admin.draft_invoice("acme", NOV)
    assert [(line.kind, line.ref) for line in draft.lines if line.kind == "adjustment"] == [
        ("adjustment", OCT)
    ]
    november = w.issue("acme", NOV)
    adjustments = [line for line in november.lines if line.kind == "adjustment"]
    assert [(a.ref, a.quantity, a.billed_usd) for a in adjustments] == [
        (OCT, 2_000_000, Decimal("1.00"))
    ]
    assert november.total_usd == Decimal("1.50") + Decimal("0.15") + Decimal("1.00")
    assert_recomputed_to_the_cent(w, november.number)
    assert_recomputed_to_the_cent(w, october.number)
    assert w.admin.draft_invoice("acme", DEC).lines == []


def test_records_stored_while_an_invoice_is_issued_are_on_it_or_on_the_next_never_both(
    billing: Billing,
) -> None:
    """A gateway ships November's records while November is issued: each record is either on
    the invoice (and its lines, which equal their recomputation) or left for December's, as an
    adjustment: the tokens of the two add up to the tokens sent, to the token."""
    w = billing
    sent: list[int] = []
    stop = threading.Event()

    def ship() -> None:
        while not stop.is_set() or len(sent) < 40:
            w.use("acme", w.node_x, at("11-30T23:00"), 1_000, 0)
            sent.append(1_000)

    shipper = threading.Thread(target=ship)
    shipper.start()
    wait_until(lambda: len(sent) >= 20, 30, "records shipping")
    invoice = w.issue("acme", NOV)
    stop.set()
    shipper.join(60)
    assert not shipper.is_alive()
    assert_recomputed_to_the_cent(w, invoice.number)
    later = w.admin.draft_invoice("acme", DEC)
    on_invoice = sum(line.quantity for line in invoice.lines)
    left = sum(line.quantity for line in later.lines if line.ref == NOV)
    assert on_invoice + left == sum(sent)
    assert on_invoice >= 20_000


def test_a_void_invoice_frees_its_records_to_be_billed_again(billing: Billing) -> None:
    w = billing
    w.use("acme", w.node_x, at("11-03T10:00"), 1_500_000, 500_000)
    first = w.issue("acme", NOV)
    voided = w.admin.void_invoice(first.number)
    assert voided.status == "void"
    assert voided.voided_at is not None
    assert w.admin.draft_invoice("acme", NOV).total_usd == first.total_usd
    assert w.http.get(f"/api/v1/invoices/{first.number}/recomputation").status_code == 409

    again = w.issue("acme", NOV)
    assert again.number == "HG-2026-000002"
    assert (again.total_usd, again.lines) == (first.total_usd, first.lines)
    paid = ok("invoices", "pay", again.number, env=server_env(w.server))
    assert f"{again.number} is paid" in paid
    for number, move in [(again.number, "void"), (first.number, "pay"), (first.number, "void")]:
        answer = w.http.post(f"/api/v1/invoices/{number}/{move}")
        assert answer.status_code == 409, answer.text
    assert [(i.number, i.status) for i in w.admin.list_invoices(customer="acme")] == [
        (again.number, "paid"),
        (first.number, "void"),
    ]


def test_an_invoice_is_refused_while_a_record_it_would_bill_has_no_price(billing: Billing) -> None:
    w = billing
    w.add_model("unpriced")
    w.use("acme", w.node_x, at("11-03T10:00"), 1_000_000, 0)
    w.use("acme", w.node_x, at("11-04T10:00"), 1_000_000, 0, model="unpriced")
    refused = w.http.post("/api/v1/invoices", json={"customer": "acme", "period": NOV})
    assert refused.status_code == 409, refused.text
    assert "no price" in refused.json()["detail"]
    assert w.admin.list_invoices() == []
    draft = w.admin.draft_invoice("acme", NOV)
    assert draft.unpriced_records == 1
    assert draft.total_usd == Decimal("0.50")  # the priced record is still free, not marked

    w.price("unpriced", FIRST, "2026-11-01T00:00:00Z")  # prices the record that had none
    assert w.issue("acme", NOV).total_usd == Decimal("1.00")


def test_only_an_ended_month_is_invoiced_and_never_before_a_later_one(billing: Billing) -> None:
    w = billing
    w.use("acme", w.node_x, at("10-03T10:00"), 1_000_000, 0)
    w.use("acme", w.node_x, at("11-03T10:00"), 1_000_000, 0)
    w.use("acme", w.node_x, at("12-01T00:00"), 1_000_000, 0)
    for period in (DEC, "2030-01"):
        answer = w.http.post("/api/v1/invoices", json={"customer": "acme", "period": period})
        assert answer.status_code == 409, answer.text
        assert "not ended" in answer.json()["detail"]
    november = w.issue("acme", NOV)  # October's record is on it, as an adjustment
    assert {line.ref for line in november.lines} == {None, OCT}
    for period in (OCT, NOV):
        answer = w.http.post("/api/v1/invoices", json={"customer": "acme", "period": period})
        assert answer.status_code == 409, answer.text
    nothing = w.http.post("/api/v1/invoices", json={"customer": "globex", "period": NOV})
    assert nothing.status_code == 409
    assert "nothing" in nothing.json()["detail"]


def test_a_customer_reads_its_own_invoices_and_no_other(billing: Billing) -> None:
    w = billing
    w.use("acme", w.node_x, at("11-03T10:00"), 1_000_000, 0)
    w.use("globex", w.node_y, at("11-03T10:00"), 2_000_000, 0)
    mine, theirs = w.issue("acme", NOV).number, w.issue("globex", NOV).number
    with w.as_customer("acme") as acme:
        listed = ok_json(acme.get("/api/v1/invoices"))
        assert [i["number"] for i in listed] == [mine]
        assert ok_json(acme.get(f"/api/v1/invoices/{mine}"))["customer"] == "acme"
        for tail in ("", "/csv", "/pdf", "/recomputation"):
            assert acme.get(f"/api/v1/invoices/{theirs}{tail}").status_code == 404
        assert acme.get("/api/v1/invoices/draft?customer=globex").status_code == 404
        assert ok_json(acme.get("/api/v1/invoices/draft"))["customer"] == "acme"
        assert (
            acme.post("/api/v1/invoices", json={"customer": "acme", "period": NOV}).status_code
            == 403
        )
        assert acme.post(f"/api/v1/invoices/{mine}/pay").status_code == 403
        assert acme.get("/api/v1/statements").status_code == 403


def test_an_invoice_downloads_as_csv_and_pdf(billing: Billing, tmp_path: Path) -> None:
    w = billing
    w.use("acme", w.node_x, at("11-03T10:00"), 1_234_567, 7_654, cached=1_000)
    invoice = w.issue("acme", NOV)
    with w.as_customer("acme") as acme:
        got = acme.get(f"/api/v1/invoices/{invoice.number}/csv")
        assert got.status_code == 200
        assert got.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(got.text)))
        pdf = acme.get(f"/api/v1/invoices/{invoice.number}/pdf")
    lines = [r for r in rows if r["kind"] in ("usage", "adjustment")]
    assert [(r["description"], Decimal(r["billed_usd"])) for r in lines] == [
        (line.description, line.billed_usd) for line in invoice.lines
    ]
    totals = {r["kind"]: Decimal(r["billed_usd"]) for r in rows if r["kind"] not in ("usage",)}
    assert totals["total"] == invoice.total_usd == sum(Decimal(r["billed_usd"]) for r in lines)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")

    env = server_env(w.server, w.tokens["acme"])
    saved = tmp_path / "invoice.pdf"
    ok("invoices", "download", invoice.number, "-o", str(saved), env=env)
    assert saved.read_bytes().startswith(b"%PDF")
    assert invoice.number in ok("invoices", "list", env=env)
    assert f"total ${invoice.total_usd}" in ok("invoices", "show", invoice.number, env=env)
    assert "invoice (draft): acme, 2026-12" in ok("invoices", "show", "--period", DEC, env=env)


def test_the_ledger_balances_to_the_cent_and_each_operator_reads_its_own_earnings(
    billing: Billing,
) -> None:
    w = billing
    w.use("acme", w.node_x, at("11-03T10:00"), 1_234_567, 345_679, cached=34_567)
    w.use("acme", w.node_y, at("11-16T10:00"), 987_654, 123_457)
    w.use("acme", None, at("11-17T10:00"), 555_555, 55_555)  # no operator's node: the platform's
    w.use("globex", w.node_x, at("11-20T10:00"), 3_333_333, 333_333)
    invoices = [w.issue("acme", NOV), w.issue("globex", NOV)]
    w.use(
        "globex", w.node_x, at("12-01T10:00"), 1_000_000, 0
    )  # December's: on no statement of November

    ledger = w.admin.ledger(NOV)
    gross = sum(i.subtotal_usd for i in invoices)
    assert (ledger.invoices, ledger.gross_usd, ledger.credits_usd) == (2, gross, Decimal("0.00"))
    assert ledger.earnings_usd + ledger.platform_share_usd + ledger.credits_usd == gross
    assert ledger.difference_usd == 0

    payouts = list(csv.DictReader(io.StringIO(w.admin.payouts_csv(NOV))))
    assert [p["operator"] for p in payouts] == ["op-x", "op-y"]
    assert sum(Decimal(p["payout_usd"]) for p in payouts) == ledger.earnings_usd

    (x,), (y,) = w.admin.statements(NOV, "op-x"), w.admin.statements(NOV, "op-y")
    # X's node alone served acme's request at the first prices and globex's: 70% of each line.
    acme, globex = invoices
    first = {usd(p) for p in (prices(FIRST).prompt, prices(FIRST).cached, prices(FIRST).completion)}
    alone = [line for line in acme.lines if line.unit_price_usd in first] + globex.lines
    assert x.final
    assert x.share_bps == 7000
    assert x.earned_usd == sum(share(line.billed_usd, 7000) for line in alone)
    assert (x.credits_usd, x.net_usd) == (0, x.earned_usd)
    assert [(p.name, p.earned_usd) for p in x.by_node] == [("node-x", x.earned_usd)]
    assert [(p.name, p.earned_usd) for p in x.by_site] == [("site-x", x.earned_usd)]
    assert [(p.name, p.earned_usd) for p in x.by_model] == [(MODEL, x.earned_usd)]
    assert ledger.earnings_usd == x.earned_usd + y.earned_usd
    assert [Decimal(p["payout_usd"]) for p in payouts] == [x.net_usd, y.net_usd]

    admin_env = server_env(w.server)
    assert ok("payouts", "export", "--period", NOV, env=admin_env) == w.admin.payouts_csv(NOV)
    shown = ok("earnings", "--period", NOV, "--operator", "op-x", env=admin_env)
    assert "node-x" in shown
    assert f"net ${x.net_usd}" in shown

    other = sign_up(w.server, "op-z", "operator")  # another operator sees none of X's
    with w.server.http(other) as z:
        assert z.get("/api/v1/statements?operator=op-x").status_code == 404
        assert [s["operator"] for s in ok_json(z.get(f"/api/v1/statements?period={NOV}"))] == [
            "op-z"
        ]
        assert z.get("/api/v1/ledger").status_code == 403

    w.admin.set_operator_share("op-x", ShareSet(share_bps=5000))  # from the next invoice on
    (later,) = w.admin.statements(NOV, "op-x")
    assert later.share_bps == 5000
    assert later.model_copy(update={"share_bps": 7000}) == x  # the issued month kept its split
    assert w.admin.ledger(NOV) == ledger


def share(amount: Decimal, bps: int) -> Decimal:
    return (amount * bps / 10_000).quantize(CENT, ROUND_HALF_EVEN)


def test_an_operators_statement_of_a_month_not_yet_invoiced_is_live(billing: Billing) -> None:
    w = billing
    w.use("acme", w.node_y, at("11-03T10:00"), 10_000_000, 0)  # $5.00, Y earns 80%
    (y,) = w.admin.statements(NOV, "op-y")
    assert not y.final
    assert y.earned_usd == Decimal("4.00")
    w.issue("acme", NOV)
    (y,) = w.admin.statements(NOV, "op-y")
    assert y.final
    assert y.earned_usd == Decimal("4.00")
    assert [(r.site, r.node, r.model) for r in y.rows] == [("site-y", "node-y", MODEL)]


def test_last_months_invoices_are_issued_automatically_once(
    database_url: str, tmp_path: Path
) -> None:
    settings = server_settings(tmp_path / "home", database_url)
    with LiveServer(settings) as server:
        w = Billing(server)
        w.use("acme", w.node_x, at("11-03T10:00"), 1_000_000, 0)
        w.use("globex", w.node_y, at("11-03T10:00"), 2_000_000, 0)
        w.use("acme", w.node_x, datetime.now().astimezone().isoformat(), 1_000_000, 0)
        w.close()
    automatic = settings.model_copy(update={"invoice_grace_s": 0.0, "invoice_interval_s": 0.2})
    with LiveServer(automatic) as server, server.client() as admin:

        def issued() -> list[Any] | None:
            found = admin.list_invoices(period=NOV)
            return found if len(found) == 2 else None

        invoices = wait_until(issued, 30, "November's invoices")
        assert {(i.customer, i.total_usd) for i in invoices} == {
            ("acme", Decimal("0.50")),
            ("globex", Decimal("1.00")),
        }
        with server.http() as http:
            twice = http.post("/api/v1/invoices", json={"customer": "acme", "period": NOV})
        assert twice.status_code == 409
        assert len(admin.list_invoices()) == 2
