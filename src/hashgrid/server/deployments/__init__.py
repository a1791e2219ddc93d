"""Deployments and their replicas."""
