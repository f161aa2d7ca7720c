"""An independent, one-id-at-a-time reference of datadiet's tie order (Python integers, no numpy)."""

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(state: int) -> int:
    """splitmix64's output for one state (Steele, Lea and Flood 2014), written out with Python integers."""
    z = state & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def tie_key(example_id: int, tie_seed: int = 0) -> int:
    """Output number ``id + 1`` of the splitmix64 generator seeded with ``tie_seed``."""
    return splitmix64(int(tie_seed) + (int(example_id) + 1) * GOLDEN)


def reference_rank(values, ids=None, tie_seed: int = 0) -> list[int]:
    """Positions sorted by (value, tie key): the rank order as the docs define it, by Python's sort."""
    ids = list(range(len(values))) if ids is None else [int(i) for i in ids]
    return sorted(range(len(values)), key=lambda p: (float(values[p]), tie_key(ids[p], tie_seed)))
