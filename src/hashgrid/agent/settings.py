"""The agent's settings, read from `HASHGRID_AGENT_*` environment variables and the CLI."""

import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hashgrid.common.paths import default_home


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HASHGRID_AGENT_", extra="ignore")

    server_url: str
    join_token: str | None = None  # needed once; afterwards the stored credential is used
    # The control plane's CA (https only): its hash, checked once and the CA pinned at
    # <home>/ca.pem (a join token from `hashgrid sites join-token` carries it), or its file.
    ca_hash: str | None = None
    ca_file: Path | None = None
    # The node credential is traded for a new one this long after it was stored (the credential
    # file's age says when, across restarts); None: never. The old one stops working at once.
    credential_rotate_s: float | None = Field(30 * 86400.0, gt=0)
    home: Path = Field(default_factory=lambda: default_home() / "agent")
    name: str = Field(default_factory=socket.gethostname)
    engine_ready_timeout_s: float = 600.0
    # A failed engine is restarted after about this long, then twice as long each time, up to
    # a minute (reset once it has served for five minutes).
    engine_restart_s: float = 1.0
    model_cache_gib: float = 200.0  # downloaded models kept on this node, least recent evicted
    hf_endpoint: str = "https://huggingface.co"
    log_level: str = "info"
    # Benchmark the reference model at start even if this node was verified before.
    verify: bool = False
    # A site agent: also drive the site's ASIC miners, as the control plane orders (pyasic is
    # imported only then).
    miners: bool = False
    # A site agent's credentials for the GPU nodes' BMCs (Redfish basic auth), which it powers
    # off while idle and on for work as the control plane orders.
    bmc_username: str | None = None
    bmc_password: str | None = None
    # Bound on the whole benchmark (it takes about a second; starting CUDA can take longer).
    verify_timeout_s: float = 60.0

    @property
    def credential_path(self) -> Path:
        return self.home / "credential.json"

    @property
    def ca_path(self) -> Path:
        """The control plane's CA, pinned at join (agent/trust.py)."""
        return self.home / "ca.pem"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def verification_path(self) -> Path:
        return self.home / "verification.json"

    @property
    def reference_dir(self) -> Path:
        return self.home / "reference"

    @property
    def engines_dir(self) -> Path:
        """A record per running engine, so an agent started after a crash can adopt them."""
        return self.home / "engines"
