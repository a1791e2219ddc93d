"""Country-to-country RTT: the RIPE Atlas table as the gateway loads it, and its fallbacks."""

import csv
import statistics
from collections import defaultdict

import pytest

from hashgrid.routing.countries import CONTINENT, country_code
from hashgrid.routing.latency import (
    BUILTIN,
    CONTINENT_MS,
    MIN_PINGS,
    SAME_COUNTRY_MS,
    UNKNOWN_MS,
    LatencyTable,
    parse_rtt_csv,
)

from support.data import RIPE


@pytest.fixture(scope="module")
def ripe() -> LatencyTable:
    return parse_rtt_csv(RIPE.read_text())


def test_ripe_table_loads_its_countries_with_namibia_as_a_country(ripe: LatencyTable) -> None:
    assert ripe.pairs > 5000
    assert ripe.rtt_ms("NA", "US") == pytest.approx(132.2, abs=0.1)  # Namibia, not "not available"
    assert ripe.rtt_ms("NA", "NA") <= SAME_COUNTRY_MS


def test_ripe_figures_are_the_measured_averages_either_way_round(ripe: LatencyTable) -> None:
    assert ripe.rtt_ms("KE", "ZA") == pytest.approx(79.2, abs=0.1)
    assert ripe.rtt_ms("ZA", "KE") == pytest.approx(79.2, abs=0.1)
    assert ripe.rtt_ms("AE", "SA") == pytest.approx(152.1, abs=0.1)
    assert ripe.rtt_ms("US", "AE") == pytest.approx(202.1, abs=0.1)


def test_a_clients_own_country_is_nearer_than_any_other(ripe: LatencyTable) -> None:
    """RIPE's US-US average (108 ms) is above CA-US (87 ms); the cap puts the US first."""
    for country in ("US", "KE", "AE", "ZA", "BR", "DE"):
        own = ripe.rtt_ms(country, country)
        others = [ripe.rtt_ms(country, other) for other in CONTINENT if other != country]
        assert own < min(others), country


def test_pairs_from_few_pings_are_dropped_for_the_continent_estimate() -> None:
    text = "cty1,cty2,rtt_cnt,rtt_avg\nDE,JP,5,3.0\nDE,FR,5000,12.0\n"
    table = parse_rtt_csv(text)
    assert table.rtt_ms("DE", "FR") == 12.0
    assert table.rtt_ms("DE", "JP") == CONTINENT_MS["AS", "EU"]


def test_ethiopia_absent_from_ripe_falls_back_to_continents(ripe: LatencyTable) -> None:
    assert country_code("ET") == "ET"
    et_ke = ripe.rtt_ms("ET", "KE")
    assert et_ke == ripe.continents["AF", "AF"]
    assert ripe.rtt_ms("ET", "ET") <= SAME_COUNTRY_MS


def test_codes_that_are_no_country_are_skipped_and_far(ripe: LatencyTable) -> None:
    assert ripe.rtt_ms("AE", "EU") == UNKNOWN_MS  # RIPE's "EU" rows are not a country
    assert BUILTIN.rtt_ms("ZZ", "US") == UNKNOWN_MS


def test_builtin_table_orders_same_country_then_continent_then_far() -> None:
    assert BUILTIN.pairs == 0
    assert BUILTIN.rtt_ms("DE", "DE") == SAME_COUNTRY_MS
    assert BUILTIN.rtt_ms("DE", "DE") < BUILTIN.rtt_ms("DE", "FR") < BUILTIN.rtt_ms("DE", "US")
    assert BUILTIN.rtt_ms("US", "CA") < BUILTIN.rtt_ms("US", "BR") < BUILTIN.rtt_ms("US", "AU")
    assert max(CONTINENT_MS.values()) < UNKNOWN_MS
    assert min(CONTINENT_MS.values()) > SAME_COUNTRY_MS


def test_builtin_continent_figures_are_the_ripe_medians() -> None:
    """The built-in figures are what the module says they are: medians of the 2025 table."""
    groups: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    with RIPE.open() as f:
        for row in csv.DictReader(f):
            a, b = row["cty1"], row["cty2"]
            if a == b or a not in CONTINENT or b not in CONTINENT:
                continue
            if int(row["rtt_cnt"]) < MIN_PINGS:
                continue
            ca, cb = sorted((CONTINENT[a], CONTINENT[b]))
            groups[ca, cb].append(float(row["rtt_avg"]))
    assert set(groups) == set(CONTINENT_MS)
    for pair, figures in groups.items():
        assert CONTINENT_MS[pair] == pytest.approx(statistics.median(figures), abs=1), pair


def test_a_table_without_the_needed_columns_is_refused() -> None:
    with pytest.raises(ValueError, match="rtt_avg"):
        parse_rtt_csv("cty1,cty2,rtt_min\nDE,FR,3\n")


def test_country_codes_are_normalised_and_checked() -> None:
    assert country_code(" ke ") == "KE"
    assert country_code("XX") is None
    assert country_code("USA") is None
    assert len(CONTINENT) == 250  # 249 ISO 3166-1 codes and Kosovo's XK
