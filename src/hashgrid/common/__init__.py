"""Building blocks with no domain knowledge: paths, logging, secrets, networking, processes."""
