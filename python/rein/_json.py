"""JSON encoding of numpy values for settings, options and states passed to the Rust core."""

import numpy as np


def default(obj):
    """`json.dumps` hook: numpy scalars as Python numbers, arrays as lists."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
