"""API shapes of a site's power model, its curtailments and its plans."""

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hashgrid.contracts.api.asic_nameplates import nameplate
from hashgrid.contracts.api.common import Moment, Out
from hashgrid.contracts.api.sites import MAX_SITE_MW
from hashgrid.contracts.bounds import text
from hashgrid.contracts.states import CurtailmentStatus, SitePowerState

BmcUrl = Annotated[
    str,
    Field(
        pattern=r"^https?://[^/\s]+/redfish/v1/Systems/[^\s]+$",
        max_length=1000,
        examples=["https://10.0.1.5/redfish/v1/Systems/1"],
    ),
]
# Physical quantities and prices, each within what a real site sees with a wide margin: a
# plan divides by them and multiplies them, and a value like 5e-324 kW or 1e308 USD would
# overflow it (a plan that answers 500, and a reconciler pass that fails).
MIN_NODE_KW = 0.01  # a GPU node draws more than 10 W busy
Kilowatts = Annotated[float, Field(ge=MIN_NODE_KW, le=1000, allow_inf_nan=False)]  # one node
HostKilowatts = Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]
Megawatts = Annotated[float, Field(ge=0, le=MAX_SITE_MW, allow_inf_nan=False)]
MwPerHour = Annotated[float, Field(ge=0.001, le=MAX_SITE_MW, allow_inf_nan=False)]
TerahashPerS = Annotated[float, Field(ge=0.001, le=100_000, allow_inf_nan=False)]  # one miner
MinerWatts = Annotated[float, Field(ge=1, le=100_000, allow_inf_nan=False)]  # one miner
# Energy prices go negative when the grid has too much; ERCOT's cap is 5,000 USD/MWh.
UsdPerMwh = Annotated[float, Field(ge=-100_000, le=100_000, allow_inf_nan=False)]
UsdPrice = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]  # per hour, PH-day
CsvPath = Annotated[str, text(1000, min_length=1)]


class AsicGroupSpec(BaseModel):
    """Miners of one model. A known model (`specs.ASIC_NAMEPLATES`) needs no TH/s or watts;
    `addresses` are the miners' IP addresses on the site, which the site agent drives (without
    them the group counts in plans but no miner receives orders).

    `control` says how the group's power is set: `sleep` (any firmware) hashes whole miners at
    full power and sleeps the rest; `power` (firmware that takes power limits: Braiins OS,
    LuxOS, VNish, ...) spreads the group's power over its miners as power targets, none below
    `min_watts`, sleeping only those the power cannot keep above it. Miners hash more per joule
    at lower power, so `power` mines more on the same MW; plans count nameplate J/TH either way.
    """

    model_config = ConfigDict(extra="forbid")

    model: Annotated[str, text(100, min_length=1)] = Field(description="e.g. Antminer S21")
    count: int | None = Field(None, ge=0, le=1_000_000, description="Default: len(addresses)")
    th_s: TerahashPerS | None = Field(None, description="TH/s of one miner; default: nameplate")
    watts: MinerWatts | None = Field(None, description="Watts of one miner; default: nameplate")
    addresses: list[Annotated[str, text(255, min_length=1)]] = Field(
        default_factory=list, max_length=100_000
    )
    control: Literal["sleep", "power"] = "sleep"
    min_watts: MinerWatts | None = Field(
        None, description="Lowest power target, `power` control only; default: half of watts"
    )

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        if self.count is None:
            self.count = len(self.addresses)
        elif self.addresses and self.count != len(self.addresses):
            raise ValueError(f"count {self.count} but {len(self.addresses)} addresses")
        if self.th_s is None or self.watts is None:
            known = nameplate(self.model)
            if known is None:
                raise ValueError(f"unknown ASIC model {self.model!r}: give th_s and watts")
            self.th_s = self.th_s or known.th_s
            self.watts = self.watts or known.watts
        if self.control == "sleep" and self.min_watts is not None:
            raise ValueError("min_watts goes with power control only")
        if self.control == "power":
            self.min_watts = self.min_watts or self.watts / 2
            if self.min_watts > self.watts:
                raise ValueError(f"min_watts {self.min_watts:g} is above watts {self.watts:g}")
        return self


class GpuEconomics(BaseModel):
    """What a site's GPU nodes draw and earn, per node. Busy draw from NVML unless given
    (power/gpu_power.py). The other defaults are assumptions to replace: 1.5 kW of host beside
    the GPUs, 1.6 kW idle, no revenue set, and a node may stop in the hour after it started."""

    model_config = ConfigDict(extra="forbid")

    busy_kw: Kilowatts | None = Field(
        None,
        description="What a busy node draws; unset: its GPUs' NVML power limits plus host_kw",
    )
    host_kw: HostKilowatts = Field(
        1.5, description="What a node draws besides its GPUs, which NVML does not see"
    )
    idle_kw: HostKilowatts = 1.6
    firm_usd_per_node_hour: UsdPrice = 0.0
    flex_usd_per_node_hour: UsdPrice = 0.0
    bmcs: dict[Annotated[str, text(100, min_length=1)], BmcUrl] = Field(
        default_factory=dict,
        max_length=100_000,
        description="Node name -> its BMC's Redfish system URL: the site agent powers the node "
        "off while idle and on when work needs it",
    )
    min_on_h: float = Field(
        1.0,
        ge=0,
        le=168,
        allow_inf_nan=False,
        description="A node started for work stays on at least this long (in whole intervals)",
    )

    @model_validator(mode="after")
    def _idle_below_busy(self) -> Self:
        if self.busy_kw is not None and self.idle_kw > self.busy_kw:
            raise ValueError("idle_kw must not exceed busy_kw")
        return self


class FixedPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["fixed"] = "fixed"
    usd_per_mwh: UsdPerMwh


class TimeOfUse(BaseModel):
    """One price per hour of the day (UTC), every day."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["time_of_use"] = "time_of_use"
    usd_per_mwh: list[UsdPerMwh] = Field(min_length=24, max_length=24)


class ErcotSeries(BaseModel):
    """Day-ahead and real-time prices of one settlement point, read from a CSV on the server in
    the layout of ERCOT's `delivery_date,hour_ending,dam_<POINT>,rtm_<POINT>`: a row per hour,
    or with `interval_min` 15 a row per quarter hour, numbered by a `delivery_interval` column
    (1-4 within the hour ending; the day-ahead price repeats over its hour). The site is then
    planned, and its miners ordered, every 15 minutes."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["ercot"] = "ercot"
    path: CsvPath
    point: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,40}$", description="e.g. LZ_WEST")
    interval_min: Literal[60, 15] = Field(60, description="Minutes per row of the series")


class ConstantHashprice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["constant"] = "constant"
    usd_per_ph_day: UsdPrice


class HashpriceSeries(BaseModel):
    """A daily series read from a CSV on the server (`date,...,hashprice_usd_per_ph_day`)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["series"] = "series"
    path: CsvPath


class ConstantAncillary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["constant"] = "constant"
    usd_per_mw_h: UsdPrice


# ERCOT's ancillary services, each a column of `energy_data.ERCOT_ANCILLARY`'s layout.
AncillaryProduct = Literal["ecrs", "rrs", "nspin", "regdn", "regup"]


class ErcotAncillary(BaseModel):
    """Hourly clearing prices of one ERCOT ancillary service, read from a CSV on the server in
    the layout of ERCOT's `delivery_date,hour_ending,regup,regdn,rrs,nspin,ecrs,...`."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["ercot"] = "ercot"
    path: CsvPath
    product: AncillaryProduct


PriceSource = Annotated[FixedPrice | TimeOfUse | ErcotSeries, Field(discriminator="kind")]
HashpriceSource = Annotated[ConstantHashprice | HashpriceSeries, Field(discriminator="kind")]
AncillarySource = Annotated[ConstantAncillary | ErcotAncillary, Field(discriminator="kind")]


class GridOffer(BaseModel):
    """Flexibility the site may sell to the grid: up to `mw` of its ASIC load, offered in the
    hours the planner finds it pays (`energy.online.commit_offer`), at `price` per MW-h."""

    model_config = ConfigDict(extra="forbid")
    mw: Megawatts
    price: AncillarySource


class PowerModel(BaseModel):
    """A site's power model; its budget is the site's `power_mw`."""

    model_config = ConfigDict(extra="forbid")

    asics: list[AsicGroupSpec] = Field(default_factory=list, max_length=64)
    gpus: GpuEconomics = GpuEconomics()
    price: PriceSource
    hashprice: HashpriceSource
    ancillary: GridOffer | None = None  # none: nothing offered to the grid
    asic_ramp_mw_per_h: MwPerHour | None = Field(
        None, description="Most the planned ASIC load may change in an hour"
    )

    @property
    def interval(self) -> timedelta:
        """How often the site is planned: its price series' interval, else an hour."""
        minutes = self.price.interval_min if isinstance(self.price, ErcotSeries) else 60
        return timedelta(minutes=minutes)


def valid_model(stored: Any) -> PowerModel | None:
    """A stored power model; None for one stored before its bounds that it now breaks."""
    try:
        return PowerModel.model_validate(stored)
    except ValidationError:
        return None


class CurtailmentCreate(BaseModel):
    """ "Site down to `target_mw` by `by`"; 0 stops everything. ASICs go first, then flex
    replicas leave (the site is `curtailed`), then firm ones (`draining`). A future `by` is
    scheduled: shedding begins a lead before it (longer when replicas must leave); a past or
    no `by`, or one in force to hand over from, is obeyed at once. It replaces the site's
    curtailment in force or scheduled."""

    model_config = ConfigDict(extra="forbid")

    target_mw: Megawatts
    by: Moment | None = Field(None, description="Deadline, with a time zone; default now")
    reason: Annotated[str, text(500)] = ""
    source: Literal["grid", "operator"] = "operator"


class CurtailmentOut(Out):
    """An event; until it begins, what it sheds is what it would shed from the load now."""

    id: str
    status: CurtailmentStatus
    source: str
    reason: str
    target_mw: float
    by: datetime
    starts_at: datetime = Field(description="When shedding is (or was) due to begin")
    started_at: datetime | None = Field(description="When shedding began")
    ended_at: datetime | None
    load_mw: float
    asic_shed_mw: float
    flex_shed_mw: float
    firm_shed_mw: float
    power_state: SitePowerState
    price_usd_per_mwh: float | None
    mining_usd_per_mwh: float | None
    energy_saved_usd: float | None = Field(description="Energy not bought; figured when it ends")
    mining_foregone_usd: float | None = Field(description="Hashing not done; when it ends")


class MinersOut(Out):
    """What the site agent last reported of its miners' orders."""

    reported_at: datetime
    revision: int
    by_action: dict[str, int]  # miners now doing each action (sleep, resume, power)
    failed: int
    first_failure: str | None
    # GPU nodes' BMCs, each one's last result: name -> on, off or failed: why
    nodes: dict[str, str] | None = None


class SitePowerOut(BaseModel):
    site: str
    budget_mw: float
    power_state: SitePowerState
    model: PowerModel | None
    curtailment: CurtailmentOut | None  # the one in force or scheduled
    miners: MinersOut | None = None  # the site agent's last report
    gpu_busy_kw: float | None = None  # what a busy GPU node draws, as plans count it
    gpu_busy_from: str | None = None  # the power model, or NVML (power/gpu_power.py)


class IntervalOut(Out):
    """One interval of a plan: MW to mining, inference and offered to the grid, and what each
    earns (energy is bought at the interval's price)."""

    start: datetime
    hours: float
    price_usd_per_mwh: float
    mining_mw: float
    inference_mw: float
    offered_mw: float
    mining_usd: float
    inference_usd: float
    ancillary_usd: float
    energy_usd: float
    flex_paused: bool = Field(
        False, description="Flex work does not pay here this interval: flex replicas move away"
    )
    applied: bool = False  # stored plans only: whether the site acted on it


class PlanOut(BaseModel):
    site: str
    intervals: list[IntervalOut]


class HistoryOut(BaseModel):
    site: str
    curtailments: list[CurtailmentOut]  # newest first
    plans: list[IntervalOut]  # stored plans, newest first
