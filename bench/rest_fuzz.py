"""Schema-driven fuzzing of the control plane's REST API with schemathesis, on SQLite and on
PostgreSQL: the checks of tests/integration/test_rest_fuzz.py with many more cases.

    python bench/rest_fuzz.py [--cases 10000] [--databases sqlite postgresql]
                              [--callers admin customer operator]

For each database and caller: a live server (uvicorn on a free port) with a site, a node, a
customer, a key, a model and a deployment; every operation of its OpenAPI document called with
valid and invalid generated requests, with the admin's, a gateway's or the node's credential as
its route takes, or as the admin of a customer or an operator that signed up, with valid
requests to the operations its role may call (tests/support/fuzz.py), until `--cases` were
sent. Prints the cases sent, the 5xx answers by route (goal: 0), the answers to a tenant that
held another organization's ids (goal: 0) and the schema violations by route and check (goal:
0). PostgreSQL: HASHGRID_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/test.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support import postgres
from support.fuzz import CALLERS, LONG_POLL_MAX_S, Caller, FuzzReport, fuzz
from support.live import LiveServer, server_settings

# Cases per operation and generation mode in one sweep; sweeps repeat until --cases are sent.
EXAMPLES_PER_SWEEP = 50


def run(kind: str, cases: int, caller: Caller) -> tuple[FuzzReport, float]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        postgres.database_url(kind, Path(tmp), "hg_fuzz") as url,
    ):
        settings = server_settings(Path(tmp) / "home", url, long_poll_max_s=LONG_POLL_MAX_S)
        with LiveServer(settings) as server:
            started = time.perf_counter()
            report = fuzz(server, EXAMPLES_PER_SWEEP, at_least=cases, caller=caller)
            return report, time.perf_counter() - started


def show(kind: str, report: FuzzReport, seconds: float) -> None:
    print(f"\n== {kind}: {report.cases} cases in {seconds:.0f} s")
    print(f"5xx answers: {sum(report.server_errors.values())}")
    for route, count in report.server_errors.most_common():
        print(f"  {count:6d}  {route}")
    print(f"answers holding another organization's ids: {sum(report.leaks.values())}")
    for route, count in report.leaks.most_common():
        print(f"  {count:6d}  {route}")
    print(f"schema violations: {sum(report.violations.values())}")
    for kind_of, count in report.violations.most_common():
        print(f"  {count:6d}  {kind_of}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", type=int, default=10_000, help="at least, per database and caller"
    )
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--callers", nargs="+", default=list(CALLERS), choices=CALLERS)
    parser.add_argument("--failures", action="store_true", help="print one case per failure")
    args = parser.parse_args()
    for kind in args.databases:
        for caller in args.callers:
            report, seconds = run(kind, args.cases, caller)
            show(f"{kind}, as {caller}", report, seconds)
            if args.failures and report.first_failure:
                print(report.failures())


if __name__ == "__main__":
    main()
