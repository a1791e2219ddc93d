"""The feed gateways watch: routing table and keys (see hashgrid.contracts.gateway)."""
