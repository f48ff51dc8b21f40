"""Small shared helpers: atomic file writes, safe file names, seeding."""

from alphaforge.utils.io import atomic_write, atomic_write_bytes, atomic_write_text, safe_filename
from alphaforge.utils.seed import seed_everything

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "safe_filename",
    "seed_everything",
]
