"""Organizations: operators run sites, customers send requests."""
