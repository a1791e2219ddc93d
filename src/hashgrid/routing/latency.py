"""Round-trip times between countries, for choosing the site nearest a client.

A deployment gives the gateway a table in the layout of the RIPE Atlas country statistics
(`cty1,cty2,rtt_cnt,rtt_avg,...`: one row per pair, either order, same-country rows allowed;
`rtt_cnt` optional) through `HASHGRID_GATEWAY_RTT_TABLE`; the caller reads the file and hands
`parse_rtt_csv` its text. Without one, `BUILTIN` answers from continents alone.

What a lookup answers, in order:
1. the measured average for the pair, when the table has it from at least `MIN_PINGS` pings;
2. for one country with itself, `SAME_COUNTRY_MS` (10 ms);
3. the median of the table's measured pairs between the two countries' continents (at least
   three of them), else the built-in figure for those continents (`CONTINENT_MS`);
4. `UNKNOWN_MS` (400 ms, worse than any continent pair) for codes that are no country we know.

Two cleanups make the RIPE averages fit for ranking: pairs seen by fewer than `MIN_PINGS`
pings are dropped (a handful of pings from one mis-located probe says little), and a country's
figure with itself is capped at half its lowest figure with any other country, so a site in the
client's own country never ranks behind one abroad on latency alone. (RIPE's US-US average is
108 ms, above CA-US at 87, because it carries every American last mile.) Geo-IP errors remain:
the 2025 table has CI-US at 29 ms and MT-US at 46 ms; an operator with a site in such a country
should correct its rows.
"""

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hashgrid.routing.countries import CONTINENT

MIN_PINGS = 1000
SAME_COUNTRY_MS = 10.0
UNKNOWN_MS = 400.0
MIN_PAIRS_FOR_CONTINENT = 3

# Median RTT (ms) between countries of two continents, from the RIPE Atlas 2025 country table
# (pairs with at least MIN_PINGS pings; tests/unit/test_latency.py recomputes it from the file).
# Within Africa is slower than Africa to Europe: much African traffic crosses Europe.
CONTINENT_MS: dict[tuple[str, str], float] = {
    ("AF", "AF"): 186, ("AF", "AS"): 281, ("AF", "EU"): 168, ("AF", "NA"): 239,
    ("AF", "OC"): 388, ("AF", "SA"): 298, ("AS", "AS"): 189, ("AS", "EU"): 168,
    ("AS", "NA"): 233, ("AS", "OC"): 276, ("AS", "SA"): 300, ("EU", "EU"): 56,
    ("EU", "NA"): 157, ("EU", "OC"): 293, ("EU", "SA"): 212, ("NA", "NA"): 82,
    ("NA", "OC"): 230, ("NA", "SA"): 137, ("OC", "OC"): 171, ("OC", "SA"): 304,
    ("SA", "SA"): 119,
}  # fmt: skip


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class LatencyTable:
    """Symmetric country-to-country RTT in milliseconds, with the fallbacks above."""

    measured: Mapping[tuple[str, str], float] = field(default_factory=dict)  # both orders
    continents: Mapping[tuple[str, str], float] = field(default_factory=lambda: CONTINENT_MS)
    same_country: Mapping[str, float] = field(default_factory=dict)  # caps from the cleanup

    def rtt_ms(self, a: str, b: str) -> float:
        """Estimated RTT between countries `a` and `b` (upper-case ISO 3166-1 alpha-2)."""
        ms = self.measured.get((a, b))
        if ms is not None:
            return ms
        if a == b:
            return min(SAME_COUNTRY_MS, self.same_country.get(a, SAME_COUNTRY_MS))
        ca, cb = CONTINENT.get(a), CONTINENT.get(b)
        if ca is None or cb is None:
            return UNKNOWN_MS
        return self.continents.get(_pair(ca, cb), UNKNOWN_MS)

    @property
    def pairs(self) -> int:
        """How many country pairs were measured (0 for the built-in table)."""
        return len({_pair(a, b) for a, b in self.measured})


BUILTIN = LatencyTable()


def parse_rtt_csv(text: str) -> LatencyTable:
    """A table from CSV text in the RIPE layout (`cty1`, `cty2`, `rtt_avg`; `rtt_cnt` optional).

    Raises ValueError when a required column is missing.
    """
    reader = csv.DictReader(io.StringIO(text))
    missing = {"cty1", "cty2", "rtt_avg"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"RTT table lacks column(s) {', '.join(sorted(missing))}")
    return table_from_rows(reader)


def table_from_rows(rows: Iterable[Mapping[str, str]]) -> LatencyTable:
    """A table from RIPE-layout rows; see the module docstring for what is kept and why."""
    kept: dict[tuple[str, str], float] = {}
    for row in rows:
        a, b = row["cty1"].strip().upper(), row["cty2"].strip().upper()
        if a not in CONTINENT or b not in CONTINENT:
            continue  # RIPE's "EU", "None", "Unknown": no country
        count = row.get("rtt_cnt")
        if count not in (None, "") and float(count) < MIN_PINGS:
            continue
        try:
            ms = float(row["rtt_avg"])
        except ValueError:
            continue
        kept[_pair(a, b)] = ms
    nearest: dict[str, float] = {}
    by_continents: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    for (a, b), ms in kept.items():
        if a == b:
            continue
        nearest[a] = min(nearest.get(a, ms), ms)
        nearest[b] = min(nearest.get(b, ms), ms)
        by_continents[_pair(CONTINENT[a], CONTINENT[b])].append(ms)
    caps = {country: ms / 2 for country, ms in nearest.items()}
    measured: dict[tuple[str, str], float] = {}
    for (a, b), ms in kept.items():
        if a == b and a in caps:
            ms = min(ms, caps[a])
        measured[a, b] = measured[b, a] = ms
    continents = dict(CONTINENT_MS)
    for pair, figures in by_continents.items():
        if len(figures) >= MIN_PAIRS_FOR_CONTINENT:
            continents[pair] = statistics.median(figures)
    return LatencyTable(measured=measured, continents=continents, same_country=caps)
