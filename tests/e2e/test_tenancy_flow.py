"""Issue 15's "done when", as users do it: the platform serves a model in its catalog; a
customer signs up, makes a key, sends requests with the official `openai` client and reads its
usage; an operator signs up, makes a site and a join token, joins a node (a real agent running
the real llama.cpp engine) and sees it. Each through the CLI (a real subprocess with its own
home), each seeing its own part and nothing of the others'."""

from pathlib import Path

import openai

from support.cli import ok, ok_json, one_line_error, server_env, sign_up
from support.live import AgentProcess, LiveFleet, wait_until


def ask(gateway_url: str, key: str, request_id: str) -> None:
    client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=key, max_retries=0)
    answer = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=4,
        extra_headers={"x-request-id": request_id},
    )
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 4


def requests_in(usage: list[dict[str, str]]) -> set[str]:
    return {r["client_request_id"] for r in usage}


def test_customers_and_operators_sign_up_and_run_their_part_seeing_only_their_own(
    tiny_model: Path, tmp_path: Path
) -> None:
    with LiveFleet(tmp_path) as fleet:
        url = fleet.server.url
        platform = server_env(fleet.server)  # the admin token: the platform's admin
        ok("models", "add", "tiny", "--path", str(tiny_model), env=platform)
        ok("deploy", "tiny", env=platform)  # public: in the platform's catalog
        ok("sites", "create", "platform-west", "--region", "us-west", "--country", "US",
           "--power-mw", "5", env=platform)  # fmt: skip

        # An operator: a site, a join token, a node joined with it.
        operator = sign_up(url, tmp_path / "olu", "olu@minerco.example", "minerco", "operator")
        ok("sites", "create", "tx-west", "--region", "us-south", "--country", "US",
           "--power-mw", "1", env=operator)  # fmt: skip
        join_token = ok("sites", "join-token", "tx-west", env=operator).strip().splitlines()[-1]
        fleet.agents.append(AgentProcess(url, tmp_path / "node", join_token, "olu-gpu-1"))
        gateway = fleet.start_gateway()

        # A customer: a key of its own organization, and requests through the gateway.
        acme = sign_up(url, tmp_path / "ada", "ada@acme.example", "acme", "customer")
        acme_key = ok_json("keys", "create", "--name", "prod", env=acme)
        wait_until(lambda: gateway.ready_replicas("tiny") == 1, 180, "tiny served by the node")
        ask(gateway.url, acme_key["key"], "acme-1")
        ask(gateway.url, acme_key["key"], "acme-2")

        # A second customer, and a second operator, each with nothing of the others'.
        globex = sign_up(url, tmp_path / "gus", "gus@globex.example", "globex", "customer")
        globex_key = ok_json("keys", "create", env=globex)
        ask(gateway.url, globex_key["key"], "globex-1")
        other_operator = sign_up(url, tmp_path / "ivo", "ivo@hashco.example", "hashco", "operator")
        wait_until(lambda: len(fleet.admin.usage()) == 3, 30, "the gateway's usage records")

        # The operator sees its node and site, and the traffic its node served: all three.
        (node,) = ok_json("nodes", "list", env=operator)
        assert (node["name"], node["site"], node["status"]) == ("olu-gpu-1", "tx-west", "ready")
        assert "olu-gpu-1" in ok("nodes", "list", env=operator)
        assert [s["name"] for s in ok_json("sites", "list", env=operator)] == ["tx-west"]
        # It is not shown whose requests they were.
        served = ok_json("usage", env=operator)
        assert [(r["node_id"], r["customer_id"], r["key_id"]) for r in served] == [
            (node["id"], None, None)
        ] * 3
        (by_model,) = ok_json("usage", "--by", "model", env=operator)
        assert (by_model["model"], by_model["requests"]) == ("tiny", 3)
        assert "403" in one_line_error("keys", "list", env=operator)

        # Each customer sees its own requests and keys only, and no site or node.
        acme_usage = ok_json("usage", env=acme)
        assert requests_in(acme_usage) == {"acme-1", "acme-2"}
        assert {r["customer_id"] for r in acme_usage} == {acme_key["customer_id"]}
        assert "acme-2" in ok("usage", env=acme)
        assert {r["node_id"] for r in acme_usage} == {None}  # nor which node served them
        (acme_day,) = ok_json("usage", "--by", "day", "--by", "key", env=acme)
        assert (acme_day["key_id"], acme_day["requests"]) == (acme_key["id"], 2)
        assert "tiny" in ok("usage", "--by", "model", env=acme)
        assert [k["id"] for k in ok_json("keys", "list", env=acme)] == [acme_key["id"]]
        assert requests_in(ok_json("usage", env=globex)) == {"globex-1"}
        assert [k["id"] for k in ok_json("keys", "list", env=globex)] == [globex_key["id"]]
        for command in (("nodes", "list"), ("sites", "list")):
            assert "403" in one_line_error(*command, env=acme)

        # The other operator: no site, node or traffic of minerco's.
        assert ok_json("sites", "list", env=other_operator) == []
        assert ok_json("nodes", "list", env=other_operator) == []
        assert ok_json("usage", env=other_operator) == []
        assert "404" in one_line_error("nodes", "show", node["id"], env=other_operator)
