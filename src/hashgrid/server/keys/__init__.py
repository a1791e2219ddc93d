"""Customer API keys: stored hashed, shown once."""
