"""The gateway's copy of the control plane's view: models, their ready replicas, live keys.

It is replaced whole on each answer of the long poll, and kept as it is while the server is
away, so the gateway goes on serving from its last view. A poll waits at most `LONG_POLL_S`:
the server answers at once when the view changed, and otherwise when the wait ends, with the
engine loads the agents reported last (loads do not move the revision; see
`server/feed/service.py`). So loads here are at most a few seconds older than the agents' beats.

A model is public or private to one customer (`RoutedModel.customer_id`). A key may call the
public ones and its customer's own; to it, another customer's private model does not exist.
Replicas whose node has no tunnel to this gateway now (`gateway/tunnel.py`) are left out of the
view until it opens one: this gateway could not reach them. The view is rebuilt from the last
answer when a tunnel opens or closes, and requests waiting for a replica are woken by it.

Replicas a compute contract reserves name their holder; `holders` says, per model that has any,
which customers hold some, so that a request for a model without one looks no further.

The public names and each customer's private names are sorted once per view (`names_by_owner`):
a request decides with one lookup, and `/v1/models` merges two sorted lists. Kept apart rather
than a full list per customer, so the view grows with the models, not with customers x models.
"""

import asyncio
import contextlib
import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import structlog

from hashgrid.common.backoff import Backoff
from hashgrid.common.paths import write_private
from hashgrid.contracts.gateway import (
    CustomerEntry,
    GatewayView,
    KeyEntry,
    RoutedModel,
    RouteReplica,
    SpendReport,
)
from hashgrid.gateway.steering import site_infos
from hashgrid.routing import SiteInfo

log = structlog.get_logger("hashgrid.gateway.view")

# How long one poll waits for a change: also how often fresh engine loads arrive. Answers
# with no change cost the server no query.
LONG_POLL_S = 5.0


@dataclass
class View:
    revision: int = 0
    models: dict[str, RoutedModel] = field(default_factory=dict)  # every model, by name
    keys: dict[str, KeyEntry] = field(default_factory=dict)  # by key hash
    sites: dict[str, SiteInfo] = field(default_factory=dict)  # by name
    customers: dict[str, CustomerEntry] = field(default_factory=dict)  # with limits, by id
    spend: SpendReport = field(default_factory=SpendReport)
    public: tuple[str, ...] = ()  # the public models' names, sorted
    # The names of each customer's private models, sorted (customers with none are absent).
    private: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The customers holding reserved replicas of each model that has some, by model name.
    holders: dict[str, frozenset[str]] = field(default_factory=dict)
    nodes: dict[str, str] = field(default_factory=dict)  # node id by credential digest

    @classmethod
    def of(
        cls, view: GatewayView, reachable: Callable[[RouteReplica], bool] | None = None
    ) -> "View":
        """The lookups of `view`; with `reachable`, only the replicas it says yes to."""
        models = view.models if reachable is None else reachable_only(view.models, reachable)
        public, private = names_by_owner(models)
        return cls(
            revision=view.revision,
            models={m.name: m for m in models},
            keys={k.key_hash: k for k in view.keys},
            sites=site_infos(view.sites),
            customers={c.customer_id: c for c in view.customers},
            spend=view.spend,
            public=public,
            private=private,
            holders=holders_of(models),
            nodes={n.credential_hash: n.node_id for n in view.nodes},
        )

    def model_for(self, customer_id: str, name: str) -> RoutedModel | None:
        """The model `name` if keys of `customer_id` may call it; None when there is none and
        when it is another customer's (the caller cannot tell the two apart)."""
        model = self.models.get(name)
        if model is None or (model.customer_id is not None and model.customer_id != customer_id):
            return None
        return model

    def names_for(self, customer_id: str) -> Sequence[str]:
        """The names of the models keys of `customer_id` may call, sorted."""
        own = self.private.get(customer_id)
        return list(heapq.merge(self.public, own)) if own else self.public


def reachable_only(
    models: Iterable[RoutedModel], reachable: Callable[[RouteReplica], bool]
) -> list[RoutedModel]:
    """`models` with only their reachable replicas (a model is copied only if one is not)."""
    kept = []
    for m in models:
        replicas = [r for r in m.replicas if reachable(r)]
        kept.append(
            m if len(replicas) == len(m.replicas) else m.model_copy(update={"replicas": replicas})
        )
    return kept


def holders_of(models: Iterable[RoutedModel]) -> dict[str, frozenset[str]]:
    """The customers holding reserved replicas of each model that has some."""
    found = {m.name: frozenset(r.holder for r in m.replicas if r.holder) for m in models}
    return {name: holders for name, holders in found.items() if holders}


def names_by_owner(
    models: Iterable[RoutedModel],
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The public models' names, and each customer's private models' names: each sorted."""
    public: list[str] = []
    private: defaultdict[str, list[str]] = defaultdict(list)
    for m in models:
        if m.customer_id is None:
            public.append(m.name)
        else:
            private[m.customer_id].append(m.name)
    return tuple(sorted(public)), {c: tuple(sorted(names)) for c, names in private.items()}


class ViewWatcher:
    """Keeps `view` current. With `saved`, each new revision is also written there (0600: it
    holds key digests), and a gateway that starts while the control plane is away serves from
    the view it saved last: its keys, models and replicas as they were (passive health ejects
    replicas that are gone; keys revoked meanwhile are refused once the server answers)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        server_url: str,
        token: str,
        saved: Path | None = None,
        reachable: Callable[[RouteReplica], bool] | None = None,
    ) -> None:
        self._session = session
        self._reachable = reachable
        self._answer = GatewayView(revision=0, models=[], keys=[])
        self._rebuild_due = False
        self._url = server_url.rstrip("/") + "/api/v1/gateway/view"
        self._headers = {"authorization": f"Bearer {token}"}
        self._saved = saved
        self._saved_revision: int | None = None
        self.view = View()
        self.synced = asyncio.Event()  # set once a view has arrived, or was read from `saved`
        self._arrived = asyncio.Event()  # set (and replaced) when a view arrives
        self._load_saved()

    def _load_saved(self) -> None:
        if self._saved is None or not self._saved.exists():
            return
        try:
            answer = GatewayView.model_validate_json(self._saved.read_bytes())
        except (OSError, ValueError) as e:
            log.warning("saved view unreadable; waiting for the control plane", error=str(e))
            return
        self._answer = answer
        self.view = View.of(answer, self._reachable)
        self._saved_revision = answer.revision
        self.synced.set()
        log.info(
            "serving from the saved view until the control plane answers", revision=answer.revision
        )

    async def fetch(self, wait_s: float) -> None:
        """One long poll; replaces the view with the answer (newer, or with newer loads)."""
        params = {"after": str(self.view.revision), "wait": str(wait_s)}
        timeout = aiohttp.ClientTimeout(total=wait_s + 10.0)
        async with self._session.get(
            self._url, params=params, headers=self._headers, timeout=timeout
        ) as r:
            r.raise_for_status()
            body = await r.read()
            answer = GatewayView.model_validate_json(body)
        self._answer = answer
        self.view = View.of(answer, self._reachable)
        self.synced.set()
        self._wake()
        if self._saved is not None and answer.revision != self._saved_revision:
            await asyncio.to_thread(write_private, self._saved, body.decode())
            self._saved_revision = answer.revision

    def reachability_changed(self) -> None:
        """A tunnel opened or closed: rebuild the view from the last answer, once per burst."""
        if not self._rebuild_due:
            self._rebuild_due = True
            asyncio.get_running_loop().call_soon(self._rebuild)

    def _rebuild(self) -> None:
        self._rebuild_due = False
        self.view = View.of(self._answer, self._reachable)
        self._wake()

    def _wake(self) -> None:
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()

    async def next_view(self, within_s: float) -> None:
        """Return when the next answer arrives (with a change or fresh loads), or `within_s`
        passes. (`asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` swallows a
        cancellation that meets the event being set, and a loop around it never ends.)"""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await self._arrived.wait()

    async def run(self) -> None:
        backoff = Backoff()
        away = False
        while True:
            try:
                await self.fetch(LONG_POLL_S)
            except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                if not away:
                    log.warning(
                        "control plane unreachable; serving from the last view", error=str(e)
                    )
                away = True
                await asyncio.sleep(backoff.next_delay())
                continue
            if away:
                log.info("control plane reachable again", revision=self.view.revision)
            away = False
            backoff.reset()
