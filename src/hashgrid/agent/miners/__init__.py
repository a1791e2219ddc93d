"""ASIC miners of a site, driven by the site's agent: status, power targets, sleep and resume.

`driver` is the seam (types and the `MinerDriver` protocol), `fleet` applies targets to many
miners at once, `pyasic_driver` reaches real firmwares through pyasic. Nothing here imports
pyasic but `pyasic_driver`, which only a site with miners imports: pyasic alone holds more
memory than a GPU node's whole agent may (issue 3: under 60 MB).
"""
