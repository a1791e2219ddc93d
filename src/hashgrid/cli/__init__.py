"""The `hashgrid` command line."""
