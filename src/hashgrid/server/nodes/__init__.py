"""Nodes: machines running the agent, and their liveness."""
