"""The gateway's spot-check choices (`gateway/spotcheck.py`): which requests, which replica
checks them, how the answers compare. The end-to-end behaviour, with real engines, is in
tests/integration/test_spot_checks.py."""

from collections import Counter
from typing import Any

import orjson

from hashgrid.contracts.gateway import RoutedModel, RouteReplica
from hashgrid.contracts.spotchecks import CheckMode
from hashgrid.gateway.spotcheck import SpotChecker, answer_text, greedy
from hashgrid.gateway.steering import candidates
from hashgrid.routing.replicas import choose_least_loaded

CHAT = "/v1/chat/completions"


def replica(rid: str, node: str, trusted: bool, cls: str | None = "cpu") -> RouteReplica:
    return RouteReplica(
        replica_id=rid,
        endpoint=f"http://{rid}",
        node_id=node,
        site="s",
        region="r",
        trusted=trusted,
        capacity_class=cls,
    )


def chat_answer(text: str) -> bytes:
    return orjson.dumps({"choices": [{"index": 0, "message": {"content": text}}]})


def test_only_whole_greedy_single_answers_are_checkable() -> None:
    body: dict[str, Any] = {"model": "m", "messages": [], "temperature": 0}
    assert greedy(CHAT, body)
    assert greedy("/v1/completions", {**body, "temperature": 0.0, "n": 1})
    assert not greedy(CHAT, {**body, "temperature": 0.7})
    assert not greedy(CHAT, {"model": "m", "messages": []})  # OpenAI's default is 1
    assert not greedy(CHAT, {**body, "seed": 7, "temperature": 1})
    assert not greedy(CHAT, {**body, "stream": True})
    assert not greedy(CHAT, {**body, "n": 2})
    assert not greedy(CHAT, {**body, "temperature": False})
    assert not greedy("/v1/embeddings", body)


def test_answer_text_reads_chat_and_completions_answers() -> None:
    assert answer_text(chat_answer("hi there")) == "hi there"
    assert answer_text(orjson.dumps({"choices": [{"text": "a"}, {"text": "b"}]})) == "a\nb"
    assert answer_text(b"not json") is None
    assert answer_text(b'{"error": {}}') is None


async def test_an_untrusted_answer_is_replayed_on_a_trusted_replica_of_another_node() -> None:
    sent: list[str] = []

    async def replay(reference: RouteReplica, endpoint: str, body: bytes) -> tuple[int, bytes]:
        sent.append(reference.replica_id)
        return 200, chat_answer("the reference answer")

    checker = SpotChecker(replay, 1.0)
    honest, liar = replica("h", "n1", False), replica("l", "n2", False)
    trusted = replica("t", "n3", True)
    routed = RoutedModel(name="m", deployment="d", replicas=[honest, liar, trusted])
    body = {"model": "m", "messages": [], "temperature": 0}
    checker.consider(routed, honest, CHAT, body, chat_answer("the reference answer"), "r1")
    checker.consider(routed, liar, CHAT, body, chat_answer("something else entirely"), "r2")
    checker.consider(routed, trusted, CHAT, body, chat_answer("x"), "r3")  # trusted: never
    await checker.drain()
    assert sent == ["t", "t"]
    verdicts = {r.node_id: (r.passed, r.mode) for r in checker.pending}
    assert verdicts == {"n1": (True, CheckMode.EXACT), "n2": (False, CheckMode.EXACT)}


async def test_other_hardware_is_checked_statistically() -> None:
    async def replay(reference: RouteReplica, endpoint: str, body: bytes) -> tuple[int, bytes]:
        return 200, chat_answer("a b c d e f g h")

    checker = SpotChecker(replay, 1.0)
    gpu = replica("g", "n1", False, "gpu-24g")
    routed = RoutedModel(name="m", deployment="d", replicas=[gpu, replica("t", "n2", True)])
    body = {"model": "m", "messages": [], "temperature": 0}
    checker.consider(routed, gpu, CHAT, body, chat_answer("a b c d e f x y"), "r1")
    await checker.drain()
    [result] = checker.pending
    assert result.mode == CheckMode.STATISTICAL
    assert result.passed


async def test_nothing_is_checked_without_a_trusted_replica_or_outside_the_share() -> None:
    async def replay(reference: RouteReplica, endpoint: str, body: bytes) -> tuple[int, bytes]:
        raise AssertionError("no replay expected")

    body = {"model": "m", "messages": [], "temperature": 0}
    alone = replica("a", "n1", False)
    lonely = SpotChecker(replay, 1.0)
    lonely.consider(RoutedModel(name="m", deployment="d", replicas=[alone]), alone, CHAT, body,
                    chat_answer("x"), "r")  # fmt: skip
    assert lonely.skipped == 1
    unlucky = SpotChecker(replay, 0.01, draw=lambda: 0.5)
    routed = RoutedModel(name="m", deployment="d", replicas=[alone, replica("t", "n2", True)])
    unlucky.consider(routed, alone, CHAT, body, chat_answer("x"), "r")
    await unlucky.drain()
    assert not unlucky.pending
    assert unlucky.skipped == 0


async def test_a_trusted_replica_this_gateway_cannot_reach_is_not_a_reference() -> None:
    async def replay(reference: RouteReplica, endpoint: str, body: bytes) -> tuple[int, bytes]:
        raise AssertionError("no replay expected")

    body = {"model": "m", "messages": [], "temperature": 0}
    node = replica("a", "n1", False)
    routed = RoutedModel(name="m", deployment="d", replicas=[node, replica("t", "n2", True)])
    checker = SpotChecker(replay, 1.0, reachable=lambda r: r.replica_id != "t")
    checker.consider(routed, node, CHAT, body, chat_answer("x"), "r")
    await checker.drain()
    assert checker.skipped == 1
    assert not checker.pending


def test_the_router_sees_each_replicas_score_from_the_view() -> None:
    """The gateway hands routing each replica's score, which `choose_least_loaded` weighs."""
    good = replica("g", "n1", False).model_copy(update={"score": 0.95})
    poor = replica("p", "n2", False).model_copy(update={"score": 0.2})
    routed = RoutedModel(name="m", deployment="d", replicas=[good, poor])
    found = candidates(routed, Counter({"g": 2}))
    assert [(c.replica_id, c.score) for c in found] == [("g", 0.95), ("p", 0.2)]
    # Busier, but reliable: (2 + 1) / 0.95 < (0 + 1) / 0.2.
    assert choose_least_loaded(found, 0).replica_id == "g"
