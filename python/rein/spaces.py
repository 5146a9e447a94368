"""rein's spaces as `gymnasium.spaces`, and the inverse of rein's flat observation encoding
(one-hot for discrete parts, `gymnasium.spaces.flatten`'s) for the vector env's buffers."""

from __future__ import annotations

import json

import numpy as np
from gymnasium import spaces


def space_from_json(text: str | dict) -> spaces.Space:
    """The gymnasium space of rein's serialised `Space` (infinite bounds are JSON null)."""
    d = json.loads(text) if isinstance(text, str) else text
    kind = d["type"]
    if kind == "Discrete":
        return spaces.Discrete(d["n"], start=d.get("start", 0))
    if kind == "Box":
        dtype = np.float32 if d["dtype"] == "float32" else np.float64
        low = np.array([-np.inf if x is None else x for x in d["low"]], dtype=np.float64)
        high = np.array([np.inf if x is None else x for x in d["high"]], dtype=np.float64)
        shape = tuple(d["shape"])
        return spaces.Box(low.reshape(shape).astype(dtype), high.reshape(shape).astype(dtype), shape, dtype)
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(d["nvec"])
    if kind == "Tuple":
        return spaces.Tuple([space_from_json(s) for s in d["spaces"]])
    raise ValueError(f"unknown space kind {kind!r}")


def flat_dim(space: spaces.Space) -> int:
    """Length of the flat encoding of one element."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    if isinstance(space, spaces.Tuple):
        return sum(flat_dim(s) for s in space.spaces)
    raise ValueError(f"unsupported space {space}")


def unflatten_batch(space: spaces.Space, flat: np.ndarray, copy: bool = True):
    """A batch of observations in Gymnasium's batched form from `n x flat_dim` flat rows: an
    array `(n, *shape)` of the box's dtype (a view of `flat` unless `copy`), int64 `(n,)` for
    Discrete, a tuple for Tuple."""
    n = flat.shape[0]
    if isinstance(space, spaces.Box):
        out = flat.reshape((n, *space.shape))
        if out.dtype != space.dtype:
            return out.astype(space.dtype)
        return out.copy() if copy else out
    if isinstance(space, spaces.Discrete):
        return np.argmax(flat, axis=1).astype(np.int64) + int(space.start)
    if isinstance(space, spaces.MultiDiscrete):
        parts, at = [], 0
        for k in space.nvec:
            parts.append(np.argmax(flat[:, at : at + k], axis=1))
            at += k
        return np.stack(parts, axis=1).astype(space.dtype)
    if isinstance(space, spaces.Tuple):
        parts, at = [], 0
        for s in space.spaces:
            d = flat_dim(s)
            parts.append(unflatten_batch(s, flat[:, at : at + d], copy))
            at += d
        return tuple(parts)
    raise ValueError(f"unsupported space {space}")


def unflatten_one(space: spaces.Space, flat: np.ndarray):
    """One observation as the single env returns it (an int for Discrete)."""
    if isinstance(space, spaces.Discrete):
        return int(np.argmax(flat)) + int(space.start)
    if isinstance(space, spaces.Tuple):
        parts, at = [], 0
        for s in space.spaces:
            d = flat_dim(s)
            parts.append(unflatten_one(s, flat[at : at + d]))
            at += d
        return tuple(parts)
    out = unflatten_batch(space, flat.reshape(1, -1))
    return out[0]
