"""The control plane as the CA of its agents and gateways (common/tls.py does the crypto)."""
