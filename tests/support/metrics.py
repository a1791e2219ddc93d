"""Reading a live control plane's /metrics: every sample, and the database writes it counted."""

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support.live import LiveServer


def server_metrics(server: LiveServer) -> dict[str, float]:
    """Every sample, keyed by its name and labels: `name{label="value"}` or `name`."""
    r = httpx.get(f"{server.url}/metrics", timeout=10)  # no credential: none is needed
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def db_writes(server: LiveServer) -> float:
    """INSERT, UPDATE and DELETE statements the server has sent to its database."""
    return sum(
        v for k, v in server_metrics(server).items() if k.startswith("hashgrid_db_writes_total")
    )


def heartbeats(server: LiveServer) -> float:
    return server_metrics(server)["hashgrid_heartbeats_total"]
