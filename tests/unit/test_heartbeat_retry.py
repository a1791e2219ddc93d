"""How long an agent waits between beats retried while the control plane is away."""

from hashgrid.agent.heartbeat import RETRY_TTL_FRACTION, retry_cap


def test_retries_stay_a_fraction_of_the_node_ttl_apart() -> None:
    assert retry_cap(interval_s=2.0, node_ttl_s=60.0) == 60.0 * RETRY_TTL_FRACTION
    assert retry_cap(interval_s=2.0, node_ttl_s=8.0) < 8.0


def test_retries_are_never_rarer_than_they_must_be_nor_more_frequent_than_beats() -> None:
    # A TTL only a few beats long: retrying at the beat interval is what the server expects.
    assert retry_cap(interval_s=2.0, node_ttl_s=4.0) == 2.0


def test_until_the_server_told_its_ttl_retries_come_at_the_beat_interval() -> None:
    assert retry_cap(interval_s=0.5, node_ttl_s=None) == 0.5
