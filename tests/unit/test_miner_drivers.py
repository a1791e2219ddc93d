"""Miner targets, what the pyasic driver finds each firmware can do, and pyasic kept out of agents
that drive no miners."""

import subprocess
import sys

import pytest
from pyasic.miners.factory import MINER_CLASSES, MinerTypes

from hashgrid.agent.miners.driver import Capabilities, MinerAction, MinerTarget
from hashgrid.agent.miners.pyasic_driver import PyasicDriver


def test_a_power_target_needs_watts_and_the_others_take_none() -> None:
    assert MinerTarget("10.0.0.1", MinerAction.POWER, 0).watts == 0
    with pytest.raises(ValueError, match="needs watts"):
        MinerTarget("10.0.0.1", MinerAction.POWER)
    with pytest.raises(ValueError, match="needs watts"):
        MinerTarget("10.0.0.1", MinerAction.POWER, -1)
    with pytest.raises(ValueError, match="takes no watts"):
        MinerTarget("10.0.0.1", MinerAction.SLEEP, 100)


@pytest.mark.parametrize(
    ("family", "model", "expected"),
    [
        (MinerTypes.LUX_OS, "ANTMINER S21", Capabilities(power_target=True, sleep=True)),
        (MinerTypes.BRAIINS_OS, "ANTMINER S19", Capabilities(power_target=True, sleep=True)),
        (MinerTypes.VNISH, "ANTMINER S19", Capabilities(power_target=True, sleep=True)),
        (MinerTypes.WHATSMINER, "M30SV10", Capabilities(power_target=True, sleep=True)),
        (MinerTypes.MARATHON, None, Capabilities(power_target=True, sleep=True)),
        # Stock firmware, ePIC and Hiveon can only sleep and resume.
        (MinerTypes.ANTMINER, "ANTMINER S19", Capabilities(power_target=False, sleep=True)),
        (MinerTypes.EPIC, "ANTMINER S21", Capabilities(power_target=False, sleep=True)),
        (MinerTypes.HIVEON, None, Capabilities(power_target=False, sleep=True)),
        # pyasic marks the KS5 as unable to shut down, though its firmware class has the method.
        (MinerTypes.ANTMINER, "ANTMINER KS5", Capabilities(power_target=False, sleep=False)),
        (MinerTypes.BITAXE, "BM1368", Capabilities(power_target=False, sleep=False)),
    ],
)
def test_capabilities_follow_what_each_pyasic_class_implements(
    family: MinerTypes, model: str | None, expected: Capabilities
) -> None:
    miner = MINER_CLASSES[family][model]("10.0.0.1")
    assert PyasicDriver(miner).capabilities == expected


def test_an_agent_without_miners_never_imports_pyasic() -> None:
    """pyasic adds about 33 MB, past what a GPU node's agent may hold (issue 3: under 60 MB)."""
    code = (
        "import sys, hashgrid.agent.main, hashgrid.agent.miners.fleet, "
        "hashgrid.agent.miners.follow; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyasic', 'asyncssh')))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == "[]"
