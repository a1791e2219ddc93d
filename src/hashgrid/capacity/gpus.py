"""The memory of common NVIDIA GPU models, to check what a node's NVML reports.

Names are matched as NVML spells them ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB",
"Tesla T4", "NVIDIA GeForce RTX 4090"), upper-cased with `-` and `_` read as spaces; a model
name matches as whole words, so "A10" is not "A100" and "H20" is not "H200". The first match
wins, so the more specific names come first. Sizes are the nominal GB of each variant; NVML
reports a little less where ECC or firmware reserves memory (about 6 % on GDDR cards with ECC
on, e.g. an L40S reports 45 GiB of its 48), hence the tolerance.
"""

import re

# (model name, nominal memory in GB of each variant)
KNOWN_GPUS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("GH200", (96, 144)),
    ("H200", (141,)),
    ("H100 NVL", (94,)),
    ("H100", (80, 94, 96)),
    ("H800", (80,)),
    ("H20", (96,)),
    ("B200", (180, 192)),
    ("A100", (40, 80)),
    ("A800", (40, 80)),
    ("A40", (48,)),
    ("A30", (24,)),
    ("A10G", (24,)),
    ("A10", (24,)),
    ("A16", (16,)),
    ("A2", (16,)),
    ("L40S", (48,)),
    ("L40", (48,)),
    ("L20", (48,)),
    ("L4", (24,)),
    ("T4", (16,)),
    ("V100", (16, 32)),
    ("RTX 6000 ADA", (48,)),
    ("RTX 5000 ADA", (32,)),
    ("RTX 4500 ADA", (24,)),
    ("RTX 4000 ADA", (20,)),
    ("RTX A6000", (48,)),
    ("RTX A5000", (24,)),
    ("RTX A4000", (16,)),
    ("RTX 5090", (32,)),
    ("RTX 5080", (16,)),
    ("RTX 4090", (24,)),
    ("RTX 4080", (16,)),
    ("RTX 4070 TI SUPER", (16,)),
    ("RTX 4070", (12,)),
    ("RTX 4060 TI", (8, 16)),
    ("RTX 3090", (24,)),
    ("RTX 3080", (10, 12)),
    ("RTX 3070", (8,)),
    ("RTX 3060", (8, 12)),
)

# A reported total within this share of a nominal size matches it.
REPORTED_SHARE = (0.90, 1.05)

_PATTERNS = tuple(
    (re.compile(rf"(?<![A-Z0-9]){re.escape(model)}(?![A-Z0-9])"), model, sizes)
    for model, sizes in KNOWN_GPUS
)


def known_model(name: str) -> tuple[str, tuple[int, ...]] | None:
    """The known model an NVML name denotes, with its sizes in GB; None if unknown."""
    normal = re.sub(r"[-_\s]+", " ", name.upper())
    for pattern, model, sizes in _PATTERNS:
        if pattern.search(normal):
            return model, sizes
    return None


def memory_matches(total_bytes: int, sizes: tuple[int, ...]) -> bool:
    """Whether a reported memory total is one of `sizes` (GB, read as GiB, as NVML reports)."""
    gib = total_bytes / 2**30
    low, high = REPORTED_SHARE
    return any(low * size <= gib <= high * size for size in sizes)
