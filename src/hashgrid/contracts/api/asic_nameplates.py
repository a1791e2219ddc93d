"""Nameplate hashrate and power of common ASIC models, so a site's fleet can be given by model
name and count alone.

Figures copied from the project's data set `hardware-power-specs/asic_gpu_power_specs.csv`
(manufacturer nameplates; the S21 and S21+ Hydro checked against public pages citing Bitmain).
The server never reads that file: a site with another model gives its TH/s and watts.
"""

from typing import NamedTuple


class Nameplate(NamedTuple):
    th_s: float
    watts: float


ASIC_NAMEPLATES: dict[str, Nameplate] = {
    "Antminer S19j Pro": Nameplate(104, 3068),
    "Antminer S19 XP": Nameplate(140, 3010),
    "Antminer S21": Nameplate(200, 3500),
    "Antminer S21 Pro": Nameplate(234, 3510),
    "Antminer S21+ Hydro": Nameplate(319, 4785),
    "Antminer S21 XP": Nameplate(270, 3645),
    "Antminer S21 XP Hydro": Nameplate(473, 5676),
    "Whatsminer M60S": Nameplate(186, 3441),
}


def nameplate(model: str) -> Nameplate | None:
    """The figures of `model`, matched without regard to case; None for an unknown model."""
    wanted = model.casefold()
    return next((n for name, n in ASIC_NAMEPLATES.items() if name.casefold() == wanted), None)
