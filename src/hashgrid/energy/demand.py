"""Inference demand on a site, in busy GPU nodes per interval.

Firm work must be served in the interval it arrives (customers wait on it). Flex work (batch
jobs, the cheaper tier) arriving in interval t may be served in t .. t + `flex_wait` or not at
all; what is not served by then is lost revenue, never a broken promise.
"""

from dataclasses import dataclass

import numpy as np

from hashgrid.energy.site import Floats


@dataclass(frozen=True)
class Demand:
    firm: Floats  # busy nodes needed in each interval
    flex: Floats  # node-intervals of flex work arriving in each interval
    flex_wait: int = 0  # intervals flex work may wait

    def __post_init__(self) -> None:
        if len(self.firm) != len(self.flex):
            raise ValueError("firm and flex need one value per interval")
        if self.flex_wait < 0 or np.any(self.firm < 0) or np.any(self.flex < 0):
            raise ValueError("demand and waits must not be negative")

    def __len__(self) -> int:
        return len(self.firm)
