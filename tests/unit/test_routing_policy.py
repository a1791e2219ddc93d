"""The routing policy: site by RTT, load and power state; replica by bounded-load prefix
affinity; passive health with cool-downs and probes. All on a fake clock."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashgrid.contracts.states import SitePowerState
from hashgrid.routing import (
    Candidate,
    DefaultPolicy,
    LatencyTable,
    PolicyConfig,
    RouteRequest,
    SiteInfo,
    affinity_key,
    parse_rtt_csv,
    prompt_prefix,
)
from hashgrid.routing.affinity import rendezvous_weight
from hashgrid.routing.health import PassiveHealth
from hashgrid.routing.replicas import choose_bounded, load_bound

from support.data import RIPE


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def ripe() -> LatencyTable:
    return parse_rtt_csv(RIPE.read_text())


def sites(**countries: str) -> dict[str, SiteInfo]:
    return {name: SiteInfo(name, country) for name, country in countries.items()}


def one_each(*site_names: str) -> list[Candidate]:
    return [Candidate(f"{s}-r", s) for s in site_names]


def site_for(
    policy: DefaultPolicy,
    country: str | None,
    replicas: list[Candidate],
    where: dict[str, SiteInfo],
) -> str:
    choice = policy.choose(RouteRequest(country), replicas, where)
    assert choice is not None
    return choice.site


# --- sites on the real RIPE Atlas table --------------------------------------------------------


def test_a_kenyan_client_is_served_in_africa_before_the_us(ripe: LatencyTable) -> None:
    policy = DefaultPolicy(ripe)
    where = sites(nairobi="KE", joburg="ZA", virginia="US")
    assert site_for(policy, "KE", one_each("nairobi", "joburg", "virginia"), where) == "nairobi"
    assert site_for(policy, "KE", one_each("joburg", "virginia"), where) == "joburg"


def test_an_emirati_client_is_served_in_the_gulf_before_the_us(ripe: LatencyTable) -> None:
    policy = DefaultPolicy(ripe)
    where = sites(dubai="AE", riyadh="SA", virginia="US")
    assert site_for(policy, "AE", one_each("dubai", "riyadh", "virginia"), where) == "dubai"
    assert site_for(policy, "AE", one_each("riyadh", "virginia"), where) == "riyadh"


def test_an_american_client_stays_home_though_ripe_rates_canada_nearer(ripe: LatencyTable) -> None:
    policy = DefaultPolicy(ripe)
    where = sites(quebec="CA", texas="US")
    assert site_for(policy, "US", one_each("quebec", "texas"), where) == "texas"


def test_a_busy_near_site_spills_to_a_far_idle_one(ripe: LatencyTable) -> None:
    policy = DefaultPolicy(ripe)
    where = sites(joburg="ZA", virginia="US")
    idle = one_each("joburg", "virginia")
    assert site_for(policy, "KE", idle, where) == "joburg"
    # KE-US is ~130 ms further than KE-ZA: a queue of a few requests per replica costs more.
    queued = [Candidate("joburg-r", "joburg", in_flight=2, running=2, waiting=3), idle[1]]
    assert site_for(policy, "KE", queued, where) == "virginia"
    busy = [Candidate("joburg-r", "joburg", in_flight=5), idle[1]]
    assert site_for(policy, "KE", busy, where) == "virginia"


def test_curtailed_and_draining_sites_serve_only_when_nothing_else_can(
    ripe: LatencyTable,
) -> None:
    policy = DefaultPolicy(ripe)
    where = {
        "nairobi": SiteInfo("nairobi", "KE", SitePowerState.CURTAILED),
        "joburg": SiteInfo("joburg", "ZA", SitePowerState.DRAINING),
        "virginia": SiteInfo("virginia", "US"),
    }
    replicas = one_each("nairobi", "joburg", "virginia")
    assert site_for(policy, "KE", replicas, where) == "virginia"
    assert site_for(policy, "KE", replicas[:2], where) == "nairobi"


def test_without_a_client_country_load_decides() -> None:
    policy = DefaultPolicy()
    where = sites(a="KE", b="US")
    replicas = [Candidate("a-r", "a", in_flight=2), Candidate("b-r", "b", in_flight=1)]
    assert site_for(policy, None, replicas, where) == "b"


def test_a_site_missing_from_the_view_ranks_as_far_away() -> None:
    policy = DefaultPolicy()
    assert site_for(policy, "DE", one_each("unknown", "paris"), sites(paris="FR")) == "paris"


# --- retries -----------------------------------------------------------------------------------


def test_retries_take_another_replica_of_the_site_then_the_next_site() -> None:
    policy = DefaultPolicy(clock=FakeClock())
    where = sites(near="DE", far="US")
    replicas = [Candidate("n1", "near"), Candidate("n2", "near"), Candidate("f1", "far")]
    request = RouteRequest("DE", affinity_key("hello"))
    tried: set[str] = set()
    order = []
    for _ in range(3):
        choice = policy.choose(request, replicas, where, tried)
        assert choice is not None
        order.append(choice.site)
        tried.add(choice.replica_id)
        policy.failed(choice.replica_id)
    assert order == ["near", "near", "far"]
    assert policy.choose(request, replicas, where, tried) is None


# --- passive health ----------------------------------------------------------------------------


def test_a_failed_replica_is_ejected_then_probed_once_then_restored() -> None:
    clock = FakeClock()
    policy = DefaultPolicy(config=PolicyConfig(eject_s=10, eject_max_s=120), clock=clock)
    replicas = [Candidate("a", "s"), Candidate("b", "s", in_flight=3)]
    request = RouteRequest()
    assert policy.choose(request, replicas, {}).replica_id == "a"  # type: ignore[union-attr]
    policy.failed("a")
    assert policy.ejected() == {"a": 10.0}
    clock.now += 9.9
    assert policy.choose(request, replicas, {}).replica_id == "b"  # type: ignore[union-attr]
    clock.now += 0.2
    probe = policy.choose(request, replicas, {})
    assert probe is not None
    assert (probe.replica_id, probe.probe) == ("a", True)
    # While the probe is out, no other request goes to "a".
    assert policy.choose(request, replicas, {}).replica_id == "b"  # type: ignore[union-attr]
    policy.succeeded("a")
    assert policy.ejected() == {}
    again = policy.choose(request, replicas, {})
    assert again is not None
    assert (again.replica_id, again.probe) == ("a", False)


def test_cool_downs_double_per_failed_probe_up_to_the_cap() -> None:
    clock = FakeClock()
    health = PassiveHealth(clock, base_s=10, max_s=120)
    seen = []
    for _ in range(6):
        cool_down = health.failed("a")
        seen.append(cool_down)
        clock.now += cool_down
        assert health.available("a", clock.now)
        assert health.begin("a", clock.now)  # the probe goes out, and fails next turn
    assert seen == [10, 20, 40, 80, 120, 120]


def test_requests_failing_together_are_one_outage_not_a_run() -> None:
    clock = FakeClock()
    health = PassiveHealth(clock, base_s=10, max_s=120)
    assert health.failed("a") == 10
    clock.now += 1
    assert health.failed("a") == 9  # in flight when it went down: the same ejection
    clock.now += 9
    assert health.failed("a") == 20  # after the cool-down: a failure in a row


def test_a_success_from_before_the_ejection_does_not_restore_it() -> None:
    clock = FakeClock()
    health = PassiveHealth(clock, base_s=10)
    health.failed("a")
    health.succeeded("a")  # an older request finishing during the cool-down
    assert not health.available("a", clock.now)


def test_a_probe_that_never_reports_lets_another_go_later() -> None:
    clock = FakeClock()
    health = PassiveHealth(clock, base_s=10, max_s=120)
    health.failed("a")
    clock.now += 10
    assert health.begin("a", clock.now)
    assert not health.available("a", clock.now + 60)
    assert health.available("a", clock.now + 121)


def test_an_ejected_replica_still_serves_when_it_is_the_only_one_left() -> None:
    policy = DefaultPolicy(clock=FakeClock())
    replicas = [Candidate("a", "s"), Candidate("b", "s")]
    policy.failed("a")
    choice = policy.choose(RouteRequest(), replicas, {}, tried={"b"})
    assert choice is not None
    assert choice.replica_id == "a"


# --- prefix affinity ---------------------------------------------------------------------------


def test_prompt_prefix_reads_chat_messages_content_parts_and_prompts() -> None:
    chat = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]},
        ]
    }
    assert prompt_prefix(chat) == "system\nBe brief.\nuser\nhi\n"
    assert prompt_prefix({"prompt": "Once upon"}) == "Once upon"
    assert prompt_prefix({"prompt": ["first", "second"]}) == "first"
    assert prompt_prefix({"prompt": [1, 2, 3]}) == "1,2,3"
    assert prompt_prefix({"prompt": 42}) == ""


def test_prompts_sharing_a_long_system_prompt_share_a_key() -> None:
    system = {"role": "system", "content": "You are a careful assistant. " * 30}
    one = {"messages": [system, {"role": "user", "content": "What is 2+2?"}]}
    two = {"messages": [system, {"role": "user", "content": "Name a river."}]}
    assert len(prompt_prefix(one)) == 512
    assert affinity_key(prompt_prefix(one)) == affinity_key(prompt_prefix(two))
    short = {"messages": [{"role": "user", "content": "What is 2+2?"}]}
    other = {"messages": [{"role": "user", "content": "Name a river."}]}
    assert affinity_key(prompt_prefix(short)) != affinity_key(prompt_prefix(other))


def test_same_prefix_lands_on_the_same_replica_until_it_is_overloaded() -> None:
    policy = DefaultPolicy(clock=FakeClock())
    request = RouteRequest(None, affinity_key("shared system prompt"))
    in_flight = dict.fromkeys(("r1", "r2", "r3", "r4"), 0)
    chosen = []
    for _ in range(8):
        replicas = [Candidate(r, "s", in_flight=n) for r, n in in_flight.items()]
        choice = policy.choose(request, replicas, {})
        assert choice is not None
        chosen.append(choice.replica_id)
        in_flight[choice.replica_id] += 1  # none finish
    preferred = chosen[0]
    assert chosen[:2] == [preferred, preferred]
    assert len(set(chosen)) > 1, "the preferred replica took everything: no load bound"
    assert max(in_flight.values()) <= 4


def test_different_prefixes_spread_over_replicas() -> None:
    policy = DefaultPolicy(clock=FakeClock())
    replicas = [Candidate(f"r{i}", "s") for i in range(4)]
    picks = {
        policy.choose(RouteRequest(None, affinity_key(f"prompt {i}")), replicas, {}).replica_id  # type: ignore[union-attr]
        for i in range(64)
    }
    assert picks == {"r0", "r1", "r2", "r3"}


def test_engine_figures_count_when_larger_than_the_gateways_own() -> None:
    assert Candidate("a", "s", in_flight=2, running=5, waiting=1).load == 6
    assert Candidate("a", "s", in_flight=2, running=1, waiting=None).load == 2
    assert Candidate("a", "s", in_flight=0).load == 0


def test_without_affinity_equal_replicas_take_turns() -> None:
    policy = DefaultPolicy(clock=FakeClock())
    replicas = [Candidate("a", "s"), Candidate("b", "s"), Candidate("c", "s")]
    picks = [policy.choose(RouteRequest(), replicas, {}).replica_id for _ in range(6)]  # type: ignore[union-attr]
    assert sorted(picks) == ["a", "a", "b", "b", "c", "c"]


# --- properties --------------------------------------------------------------------------------

SITES = {
    "nairobi": SiteInfo("nairobi", "KE"),
    "virginia": SiteInfo("virginia", "US"),
    "frankfurt": SiteInfo("frankfurt", "DE", SitePowerState.CURTAILED),
}


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Candidate], set[str], set[str], RouteRequest]:
    n = draw(st.integers(1, 8))
    replicas = [
        Candidate(
            f"r{i}",
            draw(st.sampled_from(sorted(SITES))),
            in_flight=draw(st.integers(0, 20)),
            running=draw(st.none() | st.integers(0, 20)),
            waiting=draw(st.none() | st.integers(0, 10)),
        )
        for i in range(n)
    ]
    ids = [c.replica_id for c in replicas]
    tried = set(draw(st.lists(st.sampled_from(ids), unique=True)))
    ejected = set(draw(st.lists(st.sampled_from(ids), unique=True)))
    country = draw(st.none() | st.sampled_from(["KE", "US", "DE", "BR"]))
    key = draw(st.none() | st.binary(min_size=16, max_size=16))
    return replicas, tried, ejected, RouteRequest(country, key)


def policy_with(ejected: set[str]) -> DefaultPolicy:
    policy = DefaultPolicy(clock=FakeClock())
    for rid in sorted(ejected):
        policy.failed(rid)
    return policy


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_the_choice_is_a_ready_untried_replica_and_not_ejected_while_others_remain(
    scenario: tuple[list[Candidate], set[str], set[str], RouteRequest],
) -> None:
    replicas, tried, ejected, request = scenario
    choice = policy_with(ejected).choose(request, replicas, SITES, tried)
    untried = [c for c in replicas if c.replica_id not in tried]
    if not untried:
        assert choice is None
        return
    assert choice is not None
    assert choice.replica_id in {c.replica_id for c in untried}
    healthy = [c for c in untried if c.replica_id not in ejected]
    if healthy:
        assert choice.replica_id not in ejected
        active = [c for c in healthy if SITES[c.site].power_state == SitePowerState.ACTIVE]
        if active:
            assert SITES[choice.site].power_state == SitePowerState.ACTIVE


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_the_choice_does_not_depend_on_the_order_of_the_candidates(
    scenario: tuple[list[Candidate], set[str], set[str], RouteRequest], rnd: random.Random
) -> None:
    replicas, tried, ejected, request = scenario
    shuffled = list(replicas)
    rnd.shuffle(shuffled)
    first = policy_with(ejected).choose(request, replicas, SITES, tried)
    second = policy_with(ejected).choose(request, shuffled, SITES, tried)
    assert first == second


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=10),
    st.binary(min_size=16, max_size=16),
    st.sampled_from([0.0, 0.25, 1.0]),
)
def test_bounded_load_holds_and_the_prefix_keeps_its_replica_while_under_it(
    loads: list[int], key: bytes, epsilon: float
) -> None:
    replicas = [Candidate(f"r{i}", "s", in_flight=n) for i, n in enumerate(loads)]
    chosen = choose_bounded(replicas, key, epsilon)
    assert chosen.load <= (1 + epsilon) * sum(loads) / len(loads) + 1
    preferred = max(replicas, key=lambda c: rendezvous_weight(key, c.replica_id))
    if preferred.load <= load_bound(replicas, epsilon):
        assert chosen == preferred
    # With everything idle the prefix's replica is the same whatever the loads were.
    idle = [Candidate(c.replica_id, "s") for c in replicas]
    assert choose_bounded(idle, key, epsilon) == Candidate(preferred.replica_id, "s")
