"""What a gateway reports of demand: in flight, held, started, and the TTFT p90 since the last
report."""

from hashgrid.gateway.demand import DemandMeter


def test_a_report_counts_requests_and_resets_what_happened_since_the_last() -> None:
    meter = DemandMeter()
    for _ in range(3):
        meter.begin("d1")
    meter.end("d1", 100.0)
    meter.begin("d2")
    report = meter.report()
    assert report.gateway == meter.gateway
    by = {m.deployment: m for m in report.models}
    assert (by["d1"].in_flight, by["d1"].started, by["d1"].ttft_p90_ms) == (2, 3, 100.0)
    assert (by["d2"].in_flight, by["d2"].started, by["d2"].ttft_p90_ms) == (1, 1, None)

    again = {m.deployment: m for m in meter.report().models}
    assert (again["d1"].in_flight, again["d1"].started, again["d1"].ttft_p90_ms) == (2, 0, None)


def test_nothing_left_means_an_empty_report() -> None:
    meter = DemandMeter()
    meter.begin("d1")
    meter.end("d1", None)
    assert [m.started for m in meter.report().models] == [1]
    assert meter.report().models == []


def test_a_held_request_counts_as_held_not_in_flight_and_is_urgent() -> None:
    meter = DemandMeter()
    meter.begin("d1")
    with meter.holding("d1"):
        assert meter.urgent.is_set()
        [held] = meter.report().models
        assert (held.in_flight, held.held) == (0, 1)
    [served] = meter.report().models
    assert (served.in_flight, served.held) == (1, 0)


def test_ttft_p90_of_many() -> None:
    meter = DemandMeter()
    for ms in range(1, 101):
        meter.begin("d1")
        meter.end("d1", float(ms))
    [report] = meter.report().models
    assert report.ttft_p90_ms == 90.0
