"""`hashgrid sim`: its options. The work is in `cli/simulate.py`, imported only when the
command runs: it needs numpy, scipy and matplotlib, which every other hashgrid process (the
gateway and the control plane start through this CLI too) must not load."""

from pathlib import Path

import typer


def sim(
    scenario: Path | None = typer.Argument(
        None, help="Scenario file (.toml or .json); default: the packaged 40-site fleet."
    ),
    days: int | None = typer.Option(None, "--days", min=1, help="Simulate this many days."),
    convert_asic_mw: list[str] = typer.Option(
        [], "--convert-asic-mw", help="What-if: SITE=MW of ASICs replaced by GPU nodes."
    ),
    out: Path = typer.Option(Path("sim-report"), "--out", help="Report directory."),
    data: Path | None = typer.Option(
        None, "--data", help="Shared data directory (default: ../shared/data)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Simulate the fleet hour by hour over a period and report what each site earned."""
    from hashgrid.cli.simulate import run

    run(scenario, days, convert_asic_mw, out, data, as_json)
