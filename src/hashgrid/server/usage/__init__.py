"""Usage records: one per gateway request, stored once per request id."""
