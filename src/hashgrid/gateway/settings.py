"""The gateway's settings, read from `HASHGRID_GATEWAY_*` environment variables and the CLI."""

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from hashgrid.common.connection_limits import ConnectionLimits
from hashgrid.common.net import outbound_address
from hashgrid.common.paths import default_home
from hashgrid.common.tls import is_loopback
from hashgrid.contracts.tunnel import PATH as TUNNEL_PATH
from hashgrid.routing import country_code


class GatewaySettings(ConnectionLimits):
    model_config = SettingsConfigDict(env_prefix="HASHGRID_GATEWAY_", extra="ignore")

    server_url: str
    token: str  # a gateway (or admin) token for the control plane
    host: str = "127.0.0.1"
    port: int = 7080
    # TLS: /v1 serves HTTPS whenever the gateway listens beyond loopback, unless `insecure`;
    # on loopback only when `tls` is set. Its certificate comes from the control plane's CA
    # (gateway/trust.py), which it trusts by `ca_file`, or by `ca_hash` (then pinned).
    tls: bool = False
    insecure: bool = False
    tls_hosts: list[str] = Field(default_factory=list)  # names its certificate holds besides
    ca_hash: str | None = None
    ca_file: Path | None = None
    # Where nodes dial this gateway (`gateway/tunnel.py`): its tunnel listener, on `host`.
    tunnel_port: int = 7082
    # The URL nodes dial, as they reach this gateway (behind a load balancer or NAT: its public
    # name); default: ws://HOST:TUNNEL_PORT/tunnel, where HOST is the address this machine uses
    # to reach the control plane when the gateway listens on every address.
    tunnel_url: str | None = None
    home: Path = Field(default_factory=lambda: default_home() / "gateway")
    # A request for a model with no ready replica (scaled to zero, or all its replicas moving)
    # waits this long for one, then gets a 503.
    cold_start_wait_s: float = 120.0
    # Requests in flight and held, per deployment, go to the control plane this often (and at
    # once when a request starts waiting for a first replica): what autoscaling reads.
    demand_report_s: float = 1.0
    # Attempts on distinct replicas before a request fails; only before the first byte.
    max_attempts: int = 3
    # A replica that fails before the first byte gets no traffic for eject_s, doubling per
    # failure in a row up to eject_max_s, then one probe request (routing/health.py).
    eject_s: float = 10.0
    eject_max_s: float = 120.0
    # Country-to-country RTT table, CSV in the RIPE Atlas layout (routing/latency.py); without
    # one, routing estimates RTT from continents.
    rtt_table: Path | None = None
    # Where clients are when neither their key nor the x-hashgrid-client-country header says:
    # usually the gateway's own country. None: routing by load alone for such clients.
    country: str | None = None
    usage_batch_size: int = 500
    usage_flush_s: float = 1.0
    # How often the usage spool is flushed to the disk from a worker thread, against power loss
    # (a killed process loses nothing either way: its appends are in the page cache). 0: never.
    usage_fsync_s: float = 1.0
    # Limits: in this process, or shared by every gateway on this Redis (redis://host:6379/0).
    # Unreachable Redis: each gateway falls back to its own limits and retries after retry_s.
    redis_url: str | None = None
    redis_prefix: str = "hashgrid"  # the prefix of every Redis key the limits use
    # A Redis answer slower than this fails open. Not much lower: an overloaded gateway's own
    # event loop delays answers, and failing open then would lift limits when they matter.
    redis_timeout_s: float = 1.0
    redis_retry_s: float = 2.0
    # Completion tokens charged up front against tpm when a request sets no max_tokens, and
    # reserved from a budget then when the view does not know the model's context length.
    default_completion_tokens: int = 256
    # How long a budget reservation holds at most: a request answered for longer (a very long
    # stream) lets its reservation lapse; a gateway that dies holds none for longer than this.
    budget_hold_s: float = Field(900.0, gt=0)
    # Spot-checks (gateway/spotcheck.py): the share of greedy answers from untrusted nodes
    # replayed on a trusted replica, the statistical agreement a replay on other hardware must
    # reach, and how often results go to the control plane.
    spot_check_share: float = Field(0.01, ge=0.0, le=1.0)
    spot_check_threshold: float = Field(0.5, ge=0.0, le=1.0)
    spot_check_flush_s: float = Field(2.0, gt=0)
    log_level: str = "info"
    # One info line per request (model, replica, status, ttft, tokens), like an access log;
    # false drops it (usage records still hold every request).
    access_log: bool = True

    @field_validator("country")
    @classmethod
    def _iso_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = country_code(value)
        if code is None:
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
        return code

    @property
    def tls_on(self) -> bool:
        return self.tls or (not is_loopback(self.host) and not self.insecure)

    @property
    def ca_path(self) -> Path:
        """The control plane's CA, pinned (gateway/trust.py)."""
        return self.home / "ca.pem"

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    @property
    def advertised_tunnel_url(self) -> str:
        if self.tunnel_url is not None:
            return self.tunnel_url
        wildcard = self.host in ("0.0.0.0", "::")
        host = outbound_address(self.server_url) if wildcard else self.host
        return f"ws://{host}:{self.tunnel_port}{TUNNEL_PATH}"

    @property
    def view_path(self) -> Path:
        """The last view from the control plane, to serve from after a restart while it is away."""
        return self.home / "view.json"

    @property
    def spool_path(self) -> Path:
        return self.home / "usage-spool"
