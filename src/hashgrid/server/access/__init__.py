"""Control-plane credentials: the admin token and gateway tokens."""
