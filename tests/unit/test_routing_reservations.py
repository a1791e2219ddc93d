"""Routing with replicas a compute contract reserves: the holder's requests go to its own
first, and fall back to the others only when none of its own can take them; another customer
uses a reserved replica only while its holder has nothing in flight here."""

from collections.abc import Set

from hypothesis import given, settings
from hypothesis import strategies as st

from hashgrid.routing import Candidate, DefaultPolicy, Holding, RouteRequest, SiteInfo

SITES = {"s1": SiteInfo("s1", "US"), "s2": SiteInfo("s2", "KE")}


class FakeClock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def replicas() -> list[Candidate]:
    """Acme's reserved replica, busier than the on-demand one and at the far site."""
    return [
        Candidate("held", "s2", in_flight=5, holder="acme"),
        Candidate("open", "s1", in_flight=0),
    ]


def chosen(
    policy: DefaultPolicy, holding: Holding | None, tried: Set[str] = frozenset()
) -> str | None:
    choice = policy.choose(RouteRequest("US", None, holding), replicas(), SITES, tried)
    return None if choice is None else choice.replica_id


def test_the_holders_requests_go_to_its_reserved_replica_however_busy() -> None:
    policy = DefaultPolicy()
    assert [chosen(policy, Holding("acme")) for _ in range(5)] == ["held"] * 5
    # Without reservations in play the same candidates go by site and load.
    assert chosen(policy, None) == "open"


def test_the_holder_falls_back_to_other_replicas_when_its_own_cannot_take_it() -> None:
    clock = FakeClock()
    policy = DefaultPolicy(clock=clock)
    assert chosen(policy, Holding("acme"), tried={"held"}) == "open"
    policy.failed("held")  # ejected: cooling down
    assert chosen(policy, Holding("acme")) == "open"
    clock.now += 3600  # cooled down: its own again (as the probe)
    assert chosen(policy, Holding("acme")) == "held"


def test_others_use_a_reserved_replica_only_while_its_holder_is_idle() -> None:
    policy = DefaultPolicy()
    only_held = [Candidate("held", "s2", holder="acme")]
    idle = RouteRequest("US", None, Holding("globex"))
    busy = RouteRequest("US", None, Holding("globex", frozenset({"acme"})))
    assert policy.choose(idle, only_held, SITES) is not None
    assert policy.choose(busy, only_held, SITES) is None
    assert chosen(policy, Holding("globex", frozenset({"acme"}))) == "open"


def test_a_holder_is_never_kept_off_its_own_replicas_by_being_busy() -> None:
    assert chosen(DefaultPolicy(), Holding("acme", frozenset({"acme"}))) == "held"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(("s1", "s2")), st.sampled_from((None, "acme", "globex"))),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(("acme", "globex", "initech")),
    st.frozensets(st.sampled_from(("acme", "globex"))),
    st.frozensets(st.integers(0, 5)),
)
def test_a_request_never_lands_where_its_holding_forbids(
    placed: list[tuple[str, str | None]],
    customer: str,
    busy: frozenset[str],
    tried_at: frozenset[int],
) -> None:
    """Its own replica if it has an untried one; else one on demand or of an idle holder."""
    candidates = [Candidate(f"r{i}", site, i, holder=h) for i, (site, h) in enumerate(placed)]
    tried = {f"r{i}" for i in tried_at}
    holding = Holding(customer, busy)
    choice = DefaultPolicy().choose(RouteRequest("US", None, holding), candidates, SITES, tried)
    untried = [c for c in candidates if c.replica_id not in tried]
    own = [c for c in untried if c.holder == customer]
    allowed = [c for c in untried if c.holder in (None, customer) or c.holder not in busy]
    if not allowed:
        assert choice is None
        return
    assert choice is not None
    if own:
        assert choice.replica_id in {c.replica_id for c in own}
    else:
        assert choice.replica_id in {c.replica_id for c in allowed}
