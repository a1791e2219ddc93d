"""The control plane: owns the database, serves the REST API, the agent protocol and the gateway
feed, and runs the reconcilers."""
