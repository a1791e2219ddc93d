"""Site power: each site's ASICs, price and hashprice sources, power state, curtailments and
planned intervals."""
