"""Sites and their one-time join tokens."""
