"""The control plane's settings, read from `HASHGRID_*` environment variables."""

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from hashgrid.common.connection_limits import ConnectionLimits
from hashgrid.common.paths import default_home
from hashgrid.common.tls import is_loopback


class ServerSettings(ConnectionLimits):
    model_config = SettingsConfigDict(env_prefix="HASHGRID_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    database_url: str | None = None  # default: SQLite at <home>/server/hashgrid.db
    host: str = "127.0.0.1"
    port: int = 7081
    # TLS (common/tls.py): on whenever the server listens beyond loopback, unless `insecure`
    # says otherwise; on loopback only when `tls` is set. The control plane is then the CA of
    # its agents and gateways (its key and certificates under <home>/server/tls).
    tls: bool = False
    insecure: bool = False
    # Names and addresses the server's certificate holds besides its own (a public DNS name, a
    # load balancer's address): what agents and gateways put in --server.
    tls_hosts: list[str] = Field(default_factory=list)
    # Used only when no admin token exists yet; otherwise a fresh one is made and printed.
    bootstrap_admin_token: str | None = None
    heartbeat_interval_s: float = 2.0
    # Silent this long, a node is lost and its replicas placed elsewhere: four missed beats,
    # and lost within 9 s at most (the liveness pass runs every second), inside issue 5's 10 s.
    node_ttl_s: float = 8.0
    reconcile_interval_s: float = 2.0
    replica_retry_after_s: float = 30.0
    # Autoscaling passes this often; a deployment scales down only to the most it needed over
    # the last autoscale_down_delay_s (scheduler/autoscale.py).
    autoscale_interval_s: float = 1.0
    autoscale_down_delay_s: float = 60.0
    # The power reconciler plans each site's hour at least this often (and after changes).
    power_interval_s: float = 60.0
    # A curtailment with a deadline (`by`) begins this long before it. ASICs sleep within
    # seconds of their order (30 s leaves room for a hung miner's timeout and a retry);
    # replicas leaving the site need their replacements started elsewhere first (a cold
    # start: minutes for a big model).
    curtail_asic_lead_s: float = Field(30.0, ge=0)
    curtail_drain_lead_s: float = Field(300.0, ge=0)
    # A GPU node with a BMC in its site's power model is powered off after this long without a
    # replica, and woken when replicas fit nowhere else (server/power/standby.py).
    node_standby_after_s: float = Field(900.0, ge=0)
    # External endpoints (bring your own) are probed this often; one that does not answer
    # leaves the gateways' view until it does (reconcile/endpoints.py).
    endpoint_probe_interval_s: float = 5.0
    # Compute contracts: their replicas are sampled this often for the SLA's hours, and placed
    # this long before a contract starts, so they are ready for its first hour.
    contract_sample_s: float = Field(10.0, gt=0)
    contract_lead_s: float = Field(600.0, ge=0)
    long_poll_max_s: float = 30.0
    # Spot-checks (reliability/service.py): a node with `quarantine_mismatches` failed checks
    # among its last `quarantine_window` is quarantined. Reliability scores are computed every
    # score_interval_s over the last score_window_s.
    quarantine_mismatches: int = Field(3, ge=1)
    quarantine_window: int = Field(10, ge=1)
    score_interval_s: float = Field(60.0, gt=0)
    score_window_s: float = Field(24 * 3600.0, gt=0)
    # Last month's invoices are issued this long after it ends (the gateways' spools drained),
    # checked every invoice_interval_s; None: only by hand (reconcile/invoicing.py).
    invoice_grace_s: float | None = Field(3600.0, ge=0)
    invoice_interval_s: float = Field(300.0, gt=0)
    # An agent's assignments poll is held for a random (1 - jitter) to 100% of its wait, so
    # polls begun together do not all end together (see agents/router.py).
    long_poll_jitter: float = Field(0.5, ge=0.0, le=0.9)
    log_level: str = "info"
    # Sign-up: "open" (anyone may create a customer or operator organization) or "invite" (only
    # with a code the platform admin made: `POST /api/v1/invites`).
    signup: Literal["open", "invite"] = "open"
    session_ttl_s: float = Field(12 * 3600, gt=0)  # a browser session's life
    # Sign-in attempts allowed per window, per account and per client address
    # (accounts/throttle.py).
    signin_per_account: int = Field(10, ge=1)
    signin_per_address: int = Field(50, ge=1)
    signin_window_s: float = Field(900.0, gt=0)

    @property
    def server_dir(self) -> Path:
        return self.home / "server"

    @property
    def tls_on(self) -> bool:
        return self.tls or (not is_loopback(self.host) and not self.insecure)

    @property
    def tls_dir(self) -> Path:
        return self.server_dir / "tls"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.server_dir / 'hashgrid.db'}"
