"""ASIC miners of a site, driven by the site's agent: status, power targets, sleep and resume.

`driver` is the seam (types and the `MinerDriver` protocol), `fleet` applies targets to many
miners at once, `pyasic_driver` reaches real firmwares through pyasic. Nothing here imports
pyasic but `pyasic_driver`, which only a site with miners imports: it adds about 33 MB to the
agent's own modules (51 to 85 MiB resident, measured), past the 60 MB a GPU node's agent may
hold (issue 3).
"""
