"""`hashgrid sim` as a user runs it: a 3-site, 7-day scenario against the shared data writes its
report and prints figures that add up, baseline and what-if."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.data import DATA

SCENARIO = """
name = "three sites"
start = "2025-03-01"
days = 30
latency_limit_ms = 150.0

[demand]
trace_copies = 400.0
firm_share = 0.65
flex_wait_h = 4
firm_usd_per_mtok = 0.60
flex_usd_per_mtok = 0.30

[demand.clients]
US = [0.6, -6]
DE = [0.4, 1]

[[sites]]
name = "tx-west"
country = "US"
budget_mw = 10.0
asic_model = "Antminer S21"
asic_mw = 10.0
gpu_nodes = 20
ercot_zone = "LZ_WEST"

[[sites]]
name = "no-1"
country = "NO"
budget_mw = 8.0
asic_model = "Antminer S19 XP"
asic_mw = 8.0
gpu_nodes = 10
tariff_usd_per_mwh = 45.0

[[sites]]
name = "py-1"
country = "PY"
budget_mw = 12.0
asic_model = "Antminer S21"
asic_mw = 12.0
gpu_nodes = 0
tariff_usd_per_mwh = 38.0
"""


def test_sim_writes_a_report_whose_totals_add_up(tmp_path: Path) -> None:
    scenario = tmp_path / "three.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "report"
    command = [sys.executable, "-m", "hashgrid", "sim", str(scenario), "--days", "7"]
    command += ["--convert-asic-mw", "no-1=1", "--out", str(out), "--data", str(DATA), "--json"]
    done = subprocess.run(
        command, capture_output=True, text=True, env=os.environ.copy(), timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)

    for name in ("summary.md", "margin_per_site.png", "mw_mix.png", "baseline_vs_whatif.png"):
        assert (out / name).stat().st_size > 0, name
    assert "no-1" in (out / "summary.md").read_text()

    for run in ("baseline", "whatif"):
        totals, sites = figures[run]["totals"], figures[run]["sites"]
        assert totals["hours"] == 7 * 24
        assert [s["site"] for s in sites] == ["tx-west", "no-1", "py-1"]
        assert totals["served"] + totals["dropped"] == pytest.approx(totals["offered"])
        for key in ("mining_usd", "inference_usd", "grid_usd", "energy_usd", "margin_usd"):
            assert sum(s[key] for s in sites) == pytest.approx(totals[key])
        assert totals["margin_usd"] == pytest.approx(
            totals["mining_usd"]
            + totals["inference_usd"]
            + totals["grid_usd"]
            - totals["energy_usd"]
        )
        assert sites[2]["served"] == 0
        assert sites[2]["rtt_p50_ms"] is None  # served nothing: no percentile
    base, whatif = figures["baseline"]["sites"][1], figures["whatif"]["sites"][1]
    assert whatif["gpu_nodes"] > base["gpu_nodes"]
    assert whatif["mining_usd"] < base["mining_usd"]
    assert figures["difference"]["margin_usd"] == pytest.approx(
        figures["whatif"]["totals"]["margin_usd"] - figures["baseline"]["totals"]["margin_usd"]
    )


def test_sim_without_data_says_where_to_point_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hashgrid", "sim", "--data", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "--data" in done.stderr


def test_sim_runs_the_shipped_40_site_scenario_as_the_readme_shows(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "hashgrid", "sim", "--days", "7", "--data", str(DATA)]
    command += ["--out", str(tmp_path / "report"), "--json"]
    done = subprocess.run(
        command, capture_output=True, text=True, env=os.environ.copy(), timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr
    baseline = json.loads(done.stdout)["baseline"]
    assert len(baseline["sites"]) == 40
    assert baseline["totals"]["hours"] == 7 * 24
