"""Invoices, operator statements, payouts and the ledger: the server's side of
`hashgrid.billing` (the pure core), over the priced usage records."""
