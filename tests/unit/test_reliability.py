"""Reliability scores (`capacity/score.py`) and answer agreement (`capacity/agreement.py`):
pure functions, with their invariants as properties."""

from hypothesis import given
from hypothesis import strategies as st

from hashgrid.capacity.agreement import compare
from hashgrid.capacity.score import (
    Counts,
    decayed,
    expected_ttft_ms,
    reliability,
    total,
)
from hashgrid.routing.replicas import Candidate, choose_bounded, choose_least_loaded

counts = st.builds(
    Counts,
    up_s=st.floats(0, 1e6),
    seen_s=st.floats(0, 1e6),
    requests=st.integers(0, 10_000),
    failed=st.integers(0, 10_000),
    slow=st.integers(0, 10_000),
    checks=st.integers(0, 1_000),
    mismatches=st.integers(0, 1_000),
)
texts = st.text(alphabet="abc \n", max_size=40)


@given(counts)
def test_a_score_and_each_of_its_parts_lie_in_zero_to_one(c: Counts) -> None:
    r = reliability(c)
    assert 0.0 <= r.score <= 1.0
    assert all(0.0 <= v <= 1.0 for v in r.parts().values())


def test_a_node_with_nothing_against_it_scores_one() -> None:
    assert reliability(Counts()).score == 1.0
    assert reliability(Counts(up_s=100, seen_s=100, requests=50, checks=5)).score == 1.0


@given(counts, st.integers(1, 100))
def test_more_failures_never_raise_a_score(c: Counts, more: int) -> None:
    worse = Counts(
        c.up_s, c.seen_s, c.requests + more, c.failed + more, c.slow, c.checks, c.mismatches
    )
    assert reliability(worse).score <= reliability(c).score


@given(counts, st.integers(1, 100))
def test_more_mismatches_never_raise_a_score(c: Counts, more: int) -> None:
    worse = Counts(
        c.up_s, c.seen_s, c.requests, c.failed, c.slow, c.checks + more, c.mismatches + more
    )
    assert reliability(worse).score <= reliability(c).score


def test_the_parts_say_why_a_node_scores_low() -> None:
    lying = reliability(Counts(up_s=10, seen_s=10, requests=20, checks=4, mismatches=4))
    assert lying.agreement == 0.2
    assert lying.uptime == 1.0
    assert lying.success == 1.0
    assert lying.score < 0.25
    down_half = reliability(Counts(up_s=5, seen_s=10))
    assert down_half.uptime == 0.5
    assert down_half.score == 0.5


def test_slow_requests_at_most_halve_a_score() -> None:
    slow = reliability(Counts(requests=1000, slow=1000))
    assert 0.5 <= slow.score < 0.51
    one_failure = reliability(Counts(requests=1, failed=1))
    assert one_failure.success == 5 / 6  # not 0: a prior of good requests


def test_a_site_sums_its_nodes_counts() -> None:
    site = total([Counts(10, 10, 4, 1, 0, 2, 0), Counts(0, 10, 6, 1, 2, 2, 2)])
    assert site == Counts(10, 20, 10, 2, 2, 4, 2)


@given(st.floats(0, 1e5), st.floats(0, 1e5), st.booleans(), st.floats(0, 1e5))
def test_decayed_uptime_never_exceeds_the_time_seen(
    up: float, extra: float, is_up: bool, dt: float
) -> None:
    up_s, seen_s = decayed(up, up + extra, is_up, dt)
    assert 0.0 <= up_s <= seen_s * (1 + 1e-9) + 1e-9


def test_a_node_down_for_a_day_falls_to_a_low_uptime() -> None:
    up_s, seen_s = 3600.0, 3600.0
    for _ in range(24):
        up_s, seen_s = decayed(up_s, seen_s, False, 3600.0)
    assert up_s / seen_s < 0.1


def test_gpu_classes_expect_a_faster_first_token_than_cpu_nodes() -> None:
    assert expected_ttft_ms("gpu-80g-x8") < expected_ttft_ms("cpu")
    assert expected_ttft_ms(None) == expected_ttft_ms("unverified")


@given(texts)
def test_an_answer_agrees_with_itself_in_either_mode(text: str) -> None:
    for exact in (True, False):
        found = compare(text, text, exact=exact)
        assert found.passed
        assert found.score == 1.0


@given(texts, texts)
def test_agreement_is_symmetric_and_within_zero_to_one(a: str, b: str) -> None:
    ab, ba = compare(a, b, exact=False), compare(b, a, exact=False)
    assert ab.score == ba.score
    assert ab.passed == ba.passed
    assert 0.0 <= ab.score <= 1.0


def test_an_exact_check_fails_any_difference() -> None:
    assert not compare("the cat sat on the mat", "the cat sat on a mat", exact=True).passed
    assert compare(" the cat \n", "the cat", exact=True).passed


def test_a_statistical_check_passes_a_late_divergence_and_fails_another_text() -> None:
    reference = "one two three four five six seven eight nine ten"
    honest = "one two three four five six seven eight alpha beta"  # split near the end
    altered = "I cannot help with that request today friend"
    assert compare(honest, reference, exact=False).passed
    assert not compare(altered, reference, exact=False).passed
    assert not compare("", reference, exact=False).passed


def test_the_least_loaded_choice_weighs_load_by_score() -> None:
    reliable = Candidate("a", "s", in_flight=1, score=1.0)
    flaky = Candidate("b", "s", in_flight=0, score=0.2)
    # (1 + 1) / 1 = 2 against (0 + 1) / 0.2 = 5: the reliable one, though busier.
    assert choose_least_loaded([reliable, flaky], 0).replica_id == "a"
    # Unscored replicas: plain least loaded, as before scores.
    plain = [Candidate("a", "s", in_flight=1), Candidate("b", "s", in_flight=0)]
    assert choose_least_loaded(plain, 0).replica_id == "b"


def test_prefix_affinity_sends_most_prefixes_to_the_reliable_replica() -> None:
    reliable = Candidate("a", "s", score=1.0)
    flaky = Candidate("b", "s", score=0.1)
    chosen = [
        choose_bounded([reliable, flaky], f"prefix-{i}".encode(), 0.25).replica_id
        for i in range(400)
    ]
    assert chosen.count("a") > 0.8 * len(chosen)
    assert chosen.count("b") > 0  # still a share, so it can earn its score back
