"""Compute contracts: reserved replicas of a model at a price per replica-hour, their watched
hours, and the invoice lines they make (docs/billing.md, Compute contracts)."""
