"""Routing demand to sites per (hour, client country) bucket, not per request.

The order in which a country's requests try sites is the router's own (`routing.sites.
rank_sites` with one idle replica per site: nearest by RTT from the latency table, then name).
The gateway's load term spreads requests over sites at the same distance and moves them on
when the nearest are busy; in buckets that is capacity: each country's requests go to its
nearest sites (shared in proportion to their room) while they have room, then spill to the next
ones. Countries that want the same site share its room in proportion to what they bring, so no
country's place in a list decides who is served.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hashgrid.energy.site import Floats
from hashgrid.routing import Candidate, LatencyTable, SiteInfo
from hashgrid.routing.sites import SiteWeights, rank_sites

Ints = npt.NDArray[np.int64]


def rtt_matrix(countries: tuple[str, ...], sites: tuple[str, ...], latency: LatencyTable) -> Floats:
    """Countries x sites: RTT in ms from each client country to each site's country."""
    return np.array([[latency.rtt_ms(c, s) for s in sites] for c in countries], np.float64)


def site_order(
    countries: tuple[str, ...], sites: tuple[SiteInfo, ...], latency: LatencyTable
) -> Ints:
    """Countries x sites: site indices in the order the router ranks them for each country."""
    index = {s.name: i for i, s in enumerate(sites)}
    idle = [Candidate(replica_id=s.name, site=s.name) for s in sites]
    by_name = {s.name: s for s in sites}
    return np.array(
        [
            [index[n] for n in rank_sites(idle, by_name, c, latency, SiteWeights())]
            for c in countries
        ],
        np.int64,
    )


@dataclass(frozen=True)
class Allocation:
    load: Floats  # T x sites: requests each site takes
    pairs: Floats  # countries x sites: requests over the whole period, for RTT percentiles
    unrouted: Floats  # T x countries: requests no allowed site had room for


def levels(order: Ints, rtt: Floats) -> Ints:
    """Countries x sites (in `order`): 0 for the nearest sites, 1 for the next RTT, and so on.
    Sites at the same RTT form one level: the router's load term spreads requests over them."""
    ranked = np.take_along_axis(rtt, order, axis=1)
    steps = ranked[:, 1:] > ranked[:, :-1] + 1e-9
    return np.asarray(np.c_[np.zeros(len(order), np.int64), np.cumsum(steps, axis=1)], np.int64)


def allocate(
    offered: Floats,
    room: Floats,
    order: Ints,
    rtt: Floats,
    allowed: npt.NDArray[np.bool_],
    passes: int = 3,
) -> Allocation:
    """Spread `offered` (T x countries) over sites with `room` (T x sites): each country tries
    the sites of its `order` row that `allowed` (countries x sites) permits, level by level
    (`levels`). Within a level a country asks each site in proportion to its room; a site
    asked for more than it has serves every asker the same fraction, and what is left asks the
    level again (`passes` times) before moving on to the next level."""
    left = offered.copy()
    room = np.maximum(room, 0.0)
    t_n, s_n = room.shape
    c_idx = np.arange(order.shape[0])[:, None]
    load = np.zeros((t_n, s_n))
    pairs = np.zeros((offered.shape[1], s_n))
    level = levels(order, rtt)
    ranked_allowed = np.take_along_axis(allowed, order, axis=1)
    for lv in range(int(level.max()) + 1):
        member = np.zeros(allowed.shape, dtype=bool)
        member[c_idx, order] = (level == lv) & ranked_allowed
        rows, cols = np.flatnonzero(member.any(axis=1)), np.flatnonzero(member.any(axis=0))
        if len(rows) == 0:
            continue
        group = member[np.ix_(rows, cols)]
        for _ in range(passes):
            weight = group[None, :, :] * room[:, None, cols]  # T x rows x cols
            total = weight.sum(axis=2, keepdims=True)
            ask = np.divide(
                left[:, rows, None] * weight, total, out=np.zeros_like(weight), where=total > 0
            )
            asked = ask.sum(axis=1)  # T x cols
            share = np.divide(room[:, cols], asked, out=np.ones_like(asked), where=asked > 0)
            take = ask * np.minimum(share, 1.0)[:, None, :]
            left[:, rows] = np.maximum(left[:, rows] - take.sum(axis=2), 0.0)
            taken = take.sum(axis=1)
            room[:, cols] = np.maximum(room[:, cols] - taken, 0.0)
            load[:, cols] += taken
            pairs[np.ix_(rows, cols)] += take.sum(axis=0)
    return Allocation(load, pairs, left)
