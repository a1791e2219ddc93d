"""`python -m hashgrid.agent`: the agent alone, configured by `HASHGRID_AGENT_*` variables.

`hashgrid agent` validates its options and execs this, so a node's long-running agent holds
only what it needs in memory (issue 3: under 60 MB, engines not counted).
"""

import sys

# structlog's console renderer imports rich and better_exceptions when they are installed (the
# CLI installs rich); the agent's logs do without them (plain tracebacks). Marking them absent
# keeps about 3 MB of modules out of every agent.
sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
sys.modules.setdefault("better_exceptions", None)  # type: ignore[arg-type]

from hashgrid.agent.main import run  # noqa: E402
from hashgrid.agent.registration import NoCredential  # noqa: E402
from hashgrid.agent.settings import AgentSettings  # noqa: E402
from hashgrid.agent.trust import NoTrust  # noqa: E402
from hashgrid.common.tls import UntrustedCA  # noqa: E402


def main() -> None:
    try:
        run(AgentSettings())  # server_url comes from the environment
    except (NoCredential, NoTrust, UntrustedCA) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from e


if __name__ == "__main__":
    main()
