"""The flashneox Python package, imported from the build tree (FLASHNEOX_PYTHONPATH) or as installed."""
import json
import os
import struct
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "data", "fixtures")
SHAKESPEARE = os.path.join(ROOT, "models", "neox-shakespeare")
BINARY = os.environ.get("FLASHNEOX_BINARY", os.path.join(ROOT, "build", "flashneox"))
if os.environ.get("FLASHNEOX_PYTHONPATH"):
    sys.path.insert(0, os.environ["FLASHNEOX_PYTHONPATH"])


def fixture(*parts):
    path = os.path.join(FIXTURES, *parts)
    if not os.path.exists(path):
        raise FileNotFoundError(f"fixture {path} is missing (copied from ../shared/fixtures into tests/data)")
    return path


def read_safetensors(path):
    """name -> NumPy array, for the F32/I32 files the fixtures use."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": np.float32, "I32": np.int32, "I64": np.int64}[info["dtype"]]
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(body[begin:end], dtype=dtype).reshape(info["shape"])
    return out


@pytest.fixture(scope="session")
def shakespeare():
    import flashneox
    return flashneox.Model(SHAKESPEARE)
