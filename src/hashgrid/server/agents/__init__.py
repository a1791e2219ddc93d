"""The agent protocol endpoints (see hashgrid.contracts.agent)."""
