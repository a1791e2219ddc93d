"""The audit log: every change made through the REST API, append-only."""
