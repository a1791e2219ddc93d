from pydantic import ConfigDict

from hashgrid.contracts.gateway import UsageRecord


class UsageOut(UsageRecord):
    """A stored usage record, as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    cost_usd: float = 0.0  # at the catalog's prices when it was stored
