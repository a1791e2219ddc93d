"""What a miner driver raises when it cannot do what it was asked.

MinerError             one miner could not be read or driven; the message says why
├── MinerUnreachable   nothing answered, or nothing a driver understands
├── Unsupported        its firmware has no way to do this at all
└── ActionRefused      it answered, and did not do it
"""


class MinerError(Exception):
    """One miner could not be read or driven."""


class MinerUnreachable(MinerError):
    """Nothing answered at the address, or nothing a driver understands."""


class Unsupported(MinerError):
    """The miner's firmware has no way to do this action."""


class ActionRefused(MinerError):
    """The miner answered, and did not do the action."""
