"""Where the shared data sets are (ERCOT prices, hashprice, RIPE Atlas RTT, the Azure trace,
hardware specs): `../shared/data` beside the repository, as the project's machines and CI keep
it, else `/work/shared/data` (a clone elsewhere on such a machine). Tests that read them fail,
with the path in the error, where neither exists: they are part of what is tested."""

from pathlib import Path

_BESIDE = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DATA = _BESIDE if _BESIDE.is_dir() else Path("/work/shared/data")
RIPE = DATA / "ripe-atlas-country-rtt" / "country_rtt_stat.csv"
