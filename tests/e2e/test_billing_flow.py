"""Issue 16's "done when", as users do it through the CLI: the platform prices a model and
reserves capacity for a customer; the customer sends requests with the official `openai`
client and reads an exact invoice for them and its contract; the operator whose node served
them reads its earnings for that traffic."""

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import openai

from hashgrid.billing.periods import Period

from support.cli import ok, ok_json, server_env, sign_up
from support.live import AgentProcess, LiveFleet, wait_until

PROMPT, COMPLETION = Decimal("2.50"), Decimal("10.00")  # USD per 1M tokens
HOUR_PRICE = Decimal("1.75")  # USD per replica-hour
CENT = Decimal("0.01")


def billed(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, ROUND_HALF_EVEN)


def test_a_customer_reads_an_exact_invoice_and_an_operator_its_earnings(
    tiny_model: Path, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    with LiveFleet(tmp_path) as fleet:
        url = fleet.server.url
        platform = server_env(fleet.server)
        ok("models", "add", "tiny", "--path", str(tiny_model), env=platform)
        ok("deploy", "tiny", env=platform)
        start = Period.of(now).start.isoformat()
        ok("prices", "set", "tiny", "--prompt", str(PROMPT), "--completion", str(COMPLETION),
           "--from", start, env=platform)  # fmt: skip

        operator = sign_up(url, tmp_path / "olu", "olu@minerco.example", "minerco", "operator")
        ok("sites", "create", "tx-west", "--region", "us-south", "--country", "US",
           "--power-mw", "1", env=operator)  # fmt: skip
        join_token = ok("sites", "join-token", "tx-west", env=operator).strip().splitlines()[-1]
        fleet.agents.append(AgentProcess(url, tmp_path / "node", join_token, "olu-gpu-1"))
        gateway = fleet.start_gateway()

        acme = sign_up(url, tmp_path / "ada", "ada@acme.example", "acme", "customer")
        key = ok_json("keys", "create", "--name", "prod", env=acme)["key"]
        # From the hour after next: nothing of it is placed or hosted while this test runs.
        begins = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
        ok("contracts", "create", "acme", "tiny", "--replicas", "1", "--price", str(HOUR_PRICE),
           "--start", begins.isoformat(), "--hours", "3", env=platform)  # fmt: skip
        wait_until(lambda: gateway.ready_replicas("tiny") >= 1, 180, "tiny served by the node")

        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        prompt = completion = 0
        for n in range(6):
            answer = client.chat.completions.create(
                model="tiny",
                messages=[{"role": "user", "content": f"question {n}"}],
                max_tokens=3 + n,
            )
            assert answer.usage is not None
            prompt += answer.usage.prompt_tokens
            completion += answer.usage.completion_tokens
        wait_until(lambda: len(fleet.admin.usage()) == 6, 30, "the gateway's usage records")

        # The customer's invoice of this month, live: its tokens as the engine counted them, at
        # the price book's prices, each line rounded once; the contract's reserved hours.
        invoice = ok_json("invoices", "show", env=acme)
        usage = [line for line in invoice["lines"] if line["kind"] == "usage"]
        by_unit = {line["unit"]: line for line in usage}
        assert by_unit["prompt tokens"]["quantity"] == prompt
        assert by_unit["completion tokens"]["quantity"] == completion
        for line, price in ((by_unit["prompt tokens"], PROMPT),
                            (by_unit["completion tokens"], COMPLETION)):  # fmt: skip
            exact = line["quantity"] * price / 1_000_000
            assert Decimal(line["amount_usd"]) == exact
            assert Decimal(line["billed_usd"]) == billed(exact)
        lines = sum(Decimal(line["billed_usd"]) for line in invoice["lines"])
        assert Decimal(invoice["total_usd"]) == lines
        # The contract's hours go on the invoice as they pass (none has yet: a test cannot wait
        # an hour; tests/integration/test_contract_hours.py issues an invoice of contract hours
        # and a credit on a controlled clock). The customer reads its contract meanwhile.
        (held,) = ok_json("contracts", "list", env=acme)
        assert (held["model"], held["replicas"], held["status"]) == ("tiny", 1, "pending")
        assert Decimal(held["price_per_replica_hour"]) == HOUR_PRICE
        assert "prompt tokens" in ok("invoices", "show", env=acme)

        # The operator's earnings: 70% of each usage line its node served (the contract's hours
        # are not hosted yet: no one's until they are).
        (statement,) = ok_json("earnings", env=operator)
        expected = sum(billed(Decimal(line["billed_usd"]) * Decimal("0.7")) for line in usage)
        assert (statement["operator"], statement["final"]) == ("minerco", False)
        assert Decimal(statement["earned_usd"]) == expected
        assert [row["node"] for row in statement["rows"]] != []
        assert {part["name"] for part in statement["by_site"]} == {"tx-west"}
        assert "tx-west" in ok("earnings", env=operator)
