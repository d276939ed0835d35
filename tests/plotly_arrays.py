"""One decoder for the arrays of a Plotly figure's JSON, as the tests read them (AppTest protos, or the
figure a browser holds): nested lists, or Plotly's typed-array form {"dtype", "bdata" (base64), "shape"}."""

from __future__ import annotations

import base64

import numpy as np


def plotly_array(value) -> np.ndarray:
    """The values as a float array, in their shape."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = [int(side) for side in str(value.get("shape", "")).split(",") if side.strip()]
        return (flat.reshape(shape) if shape else flat).astype(float)
    return np.asarray(value, dtype=float)
