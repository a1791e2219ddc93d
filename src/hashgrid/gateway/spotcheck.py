"""Spot-checks: a share of the greedy requests an untrusted node answered is replayed on a
trusted replica of the same model, and the two answers compared (`capacity/agreement.py`).

Which requests: answered whole (not streamed), 2xx, by a replica whose node is not the
platform's own (`RouteReplica.trusted` false), asking for greedy decoding: `temperature` 0 and
one choice (`n` absent or 1). Greedy decoding is what makes two engines' answers comparable; a
`seed` alone does not, since a sampled answer also depends on the engine's batching and
hardware. Of those, `share` (default 0.01) is drawn at random.

How: after the customer has the answer, in the background, the same body goes to a trusted
replica of the same deployment on another node, the way the proxy reaches replicas (down the
node's tunnel). The replay is the platform's cost: it never passes the proxy's metering,
limits or budgets, so it enters
no usage record and no customer's rate limit. At most `MAX_IN_FLIGHT` replays run at once;
beyond that a drawn request is skipped rather than queued, so checks never pile up on the
trusted replicas under load.

Results go to the control plane in batches (`POST /api/v1/gateway/spot-checks`), each with its
own id, resent until acknowledged; the server stores them and quarantines a node whose answers
keep failing (docs/gateway.md).
"""

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import structlog

from hashgrid.capacity.agreement import DEFAULT_THRESHOLD, compare
from hashgrid.contracts.gateway import RoutedModel, RouteReplica
from hashgrid.contracts.spotchecks import CheckMode, SpotCheckBatch, SpotCheckResult
from hashgrid.gateway.upstreams import Upstreams

log = structlog.get_logger("hashgrid.gateway.spotcheck")

MAX_IN_FLIGHT = 4
MAX_PENDING = 10_000  # results held while the control plane is away; the oldest go first
REPLAY_TIMEOUT_S = 300.0
ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/completions"})

# Sends `body` to `replica`'s `endpoint` and returns the status and the whole answer.
Replay = Callable[[RouteReplica, str, bytes], Awaitable[tuple[int, bytes]]]


def greedy(endpoint: str, body: dict[str, Any]) -> bool:
    """Whether the request asks for one greedy answer, whole: what a spot-check can compare."""
    temperature = body.get("temperature")
    return (
        endpoint in ENDPOINTS
        and body.get("stream") is not True
        and body.get("n") in (None, 1)
        and isinstance(temperature, int | float)
        and not isinstance(temperature, bool)
        and temperature == 0
    )


def answer_text(data: bytes) -> str | None:
    """The text of an OpenAI answer's choices (chat or completions) in index order; None when
    it is no such answer."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    choices = parsed.get("choices") if isinstance(parsed, dict) else None
    if not isinstance(choices, list) or not choices:
        return None
    texts = []
    for choice in choices:
        if not isinstance(choice, dict):
            return None
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        texts.append(text if isinstance(text, str) else "")
    return "\n".join(texts)


def replay_over(upstreams: Upstreams) -> Replay:
    """Replays the way the proxy reaches a replica: down its node's tunnel, or to an external
    endpoint (`gateway/upstreams.py`)."""

    async def replay(replica: RouteReplica, endpoint: str, body: bytes) -> tuple[int, bytes]:
        answer = await asyncio.wait_for(upstreams.post(replica, endpoint, body), REPLAY_TIMEOUT_S)
        try:
            return answer.status, await asyncio.wait_for(answer.read(), REPLAY_TIMEOUT_S)
        finally:
            answer.release()

    return replay


class SpotChecker:
    """Draws answers to check, replays them in the background, and keeps the results in
    `pending` until `SpotCheckShipper` has them acknowledged."""

    def __init__(
        self,
        replay: Replay,
        share: float,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        draw: Callable[[], float] = random.random,
        reachable: Callable[[RouteReplica], bool] = lambda _: True,
    ) -> None:
        self._replay = replay
        self._reachable = reachable
        self.share = share
        self.threshold = threshold
        self._draw = draw
        self._tasks: set[asyncio.Task[None]] = set()
        self.pending: list[SpotCheckResult] = []
        self.skipped = 0  # drawn but not checked: no trusted replica, or too many in flight

    def consider(
        self,
        routed: RoutedModel,
        replica: RouteReplica,
        endpoint: str,
        body: dict[str, Any],
        answer: bytes,
        request_id: str,
    ) -> None:
        """Draw whether to check `replica`'s `answer` to `body`; if so, start the replay."""
        if replica.trusted or self.share <= 0 or not greedy(endpoint, body):
            return
        if self._draw() >= self.share:
            return
        references = [
            r
            for r in routed.replicas
            if r.trusted and r.node_id != replica.node_id and self._reachable(r)
        ]
        if not references or len(self._tasks) >= MAX_IN_FLIGHT:
            self.skipped += 1
            return
        reference = random.choice(references)
        task = asyncio.create_task(
            self._check(routed.name, replica, reference, endpoint, body, answer, request_id)
        )
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("spot-check failed in the gateway", exc_info=error)

    async def _check(
        self,
        model: str,
        replica: RouteReplica,
        reference: RouteReplica,
        endpoint: str,
        body: dict[str, Any],
        answer: bytes,
        request_id: str,
    ) -> None:
        text = answer_text(answer)
        try:
            status, data = await self._replay(reference, endpoint, orjson.dumps(body))
        except (aiohttp.ClientError, TimeoutError) as e:
            log.info("spot-check replay failed", reference=reference.replica_id, error=str(e))
            self.skipped += 1
            return
        expected = answer_text(data) if status < 400 else None
        if expected is None:  # the reference could not answer: no verdict on the node
            self.skipped += 1
            return
        exact = replica.capacity_class is not None and (
            replica.capacity_class == reference.capacity_class
        )
        found = compare(text or "", expected, exact=exact, threshold=self.threshold)
        result = SpotCheckResult(
            check_id=uuid.uuid4().hex,
            request_id=request_id,
            model=model,
            node_id=replica.node_id,
            replica_id=replica.replica_id,
            reference_node_id=reference.node_id,
            reference_replica_id=reference.replica_id,
            mode=CheckMode.EXACT if exact else CheckMode.STATISTICAL,
            agreement=round(found.score, 4),
            passed=found.passed and text is not None,
            checked_at=datetime.now(UTC),
        )
        if not result.passed:
            log.warning(
                "spot-check mismatch",
                node_id=replica.node_id,
                replica=replica.replica_id,
                reference=reference.replica_id,
                mode=result.mode,
                agreement=result.agreement,
                request_id=request_id,
            )
        self.pending.append(result)
        del self.pending[:-MAX_PENDING]

    async def drain(self) -> None:
        """Wait for the replays in flight (tests, and a stopping gateway)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class SpotCheckShipper:
    """Sends the checker's results to the control plane every `interval_s`, a batch at a time;
    a batch stays until acknowledged (the server keeps each check once by its id)."""

    def __init__(
        self,
        checker: SpotChecker,
        session: aiohttp.ClientSession,
        server_url: str,
        token: str,
        interval_s: float = 2.0,
    ) -> None:
        self._checker = checker
        self._session = session
        self._url = server_url.rstrip("/") + "/api/v1/gateway/spot-checks"
        self._headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        self._interval_s = interval_s

    async def run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.ship_once()
            except (aiohttp.ClientError, TimeoutError) as e:
                if not failing:
                    log.warning("cannot report spot-checks to the control plane", error=str(e))
                failing = True
                continue
            failing = False

    async def ship_once(self) -> None:
        batch = list(self._checker.pending)
        if not batch:
            return
        async with self._session.post(
            self._url,
            data=SpotCheckBatch(results=batch).model_dump_json(),
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=10.0),
        ) as r:
            r.raise_for_status()
        sent = {id(result) for result in batch}
        self._checker.pending = [p for p in self._checker.pending if id(p) not in sent]
