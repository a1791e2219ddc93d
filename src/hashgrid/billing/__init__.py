"""Money as pure arithmetic, shared by the gateway (admission, budgets) and the server (the
authoritative figures): no I/O, no floats.

Units (all integers):
- a unit price is **pico-dollars per token** (1e-12 USD), which is the same number as
  micro-dollars per million tokens: a price sheet's `$0.50 / 1M tokens` is 500_000;
- an exact cost is pico-dollars: tokens times unit prices, never rounded;
- a budget or a spend counter is micro-dollars (1e-6 USD), a cost rounded *up* to it, so a
  budget is never under-counted;
- an invoice amount is cents, rounded once per invoice line, half to even.

`money` holds the units and roundings, `periods` the billing period (the UTC calendar month).
"""
