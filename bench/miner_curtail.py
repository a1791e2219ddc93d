"""How long a site agent takes to curtail a whole site of miners, and to wake it again.

    python bench/miner_curtail.py [--miners 1000] [--hung 10] [--timeout 5]

Starts `--miners` fake LuxOS miners (tests/support/fake_miner.py: the real RPC protocol, each on
port 4028 of its own loopback address) and drives them through pyasic with one `Fleet`: find
and read every miner, put every one to sleep, wake every one; then `--hung` of them start to
hang (accept connections, never answer) and every miner is put to sleep again, which prints
when the last answering miner was asleep. The fakes run in this process, on the fleet's event
loop, so the figures include serving them: a real site's miners answer on their own CPUs.

Goal (issue 6): curtailment in seconds for a whole site, a hung miner costing no one else time.
"""

import argparse
import asyncio
import sys
import time
from pathlib import Path

from hashgrid.agent.miners.driver import MinerAction, MinerTarget
from hashgrid.agent.miners.fleet import Fleet
from hashgrid.agent.miners.pyasic_driver import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.fake_miner import FakeLuxMiner


async def run(miners: int, hung: int, timeout_s: float) -> None:
    fakes = list(await asyncio.gather(*(FakeLuxMiner.start() for _ in range(miners))))
    try:
        fleet = Fleet(connect, timeout_s=timeout_s)
        started = time.monotonic()
        found = await fleet.statuses([f.address for f in fakes])
        read = sum(r.status is not None for r in found)
        print(f"find and read {miners} miners: {time.monotonic() - started:.2f} s ({read} read)")
        for action in (MinerAction.SLEEP, MinerAction.RESUME):
            await _timed(fleet, fakes, action)
        for fake in fakes[:hung]:
            fake.mute()
        print(f"{hung} of them now hang (accept, never answer), deadline {timeout_s:g} s:")
        started = await _timed(fleet, fakes, MinerAction.SLEEP)
        answering = fakes[hung:]
        last = max((f.slept_at or started) - started for f in answering)
        asleep = sum(not f.hashing for f in answering)
        print(f"  the {len(answering)} others: {asleep} asleep, the last {last:.2f} s after start")
    finally:
        await asyncio.gather(*(f.stop() for f in fakes))


async def _timed(fleet: Fleet, fakes: list[FakeLuxMiner], action: MinerAction) -> float:
    started = time.monotonic()
    results = await fleet.apply([MinerTarget(f.address, action) for f in fakes])
    failed = sum(not r.ok for r in results)
    print(f"{action} {len(results)} miners: {time.monotonic() - started:.2f} s, {failed} failed")
    return started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=1000)
    parser.add_argument("--hung", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=5.0, help="per-miner deadline, seconds")
    args = parser.parse_args()
    asyncio.run(run(args.miners, args.hung, args.timeout))


if __name__ == "__main__":
    main()
