"""Every hashgrid process but the agent starts through the CLI (`hashgrid gateway`, `hashgrid
server`): what the CLI imports at start, each of them carries in memory. The gateway's resident
memory must stay under 120 MB (issue 4), so the numeric and plotting stack that only `hashgrid
sim` and the control plane's power planning need is loaded when they run, not before."""

import subprocess
import sys

HEAVY = ("numpy", "scipy", "matplotlib", "pyasic", "pandas")


def test_the_cli_and_the_gateway_load_no_numeric_or_plotting_stack() -> None:
    code = (
        "import sys, hashgrid.cli.main, hashgrid.gateway.app; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_the_cli_starts_without_the_server_or_sqlalchemy() -> None:
    """A command reads and writes the API's shapes from `contracts/`: only `hashgrid server`
    loads the control plane, when it runs."""
    code = (
        "import sys, hashgrid.cli.main; "
        "print(sorted(m for m in sys.modules if m.startswith(('hashgrid.server', 'sqlalchemy'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout
