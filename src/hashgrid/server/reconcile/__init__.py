"""Reconcilers: level-triggered loops that move the world toward the database."""
