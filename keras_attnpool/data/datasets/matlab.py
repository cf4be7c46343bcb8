"""Reading MATLAB `.mat` annotations (MPII, HICO) with `scipy.io.loadmat`.

Files are loaded with `struct_as_record=False, squeeze_me=True`, which gives attribute access
(`release.annolist[i].image.name`) but squeezes away MATLAB's shapes: a struct array of one
element becomes a bare struct, an empty field becomes an empty array, a 1x1 number a Python
scalar. `as_list`, `get`, `text` and `number` undo those quirks in one place.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import scipy.io
from scipy.io.matlab import mat_struct

from keras_attnpool.data.datasets.records import DatasetError


def load_mat(path: str, required: tuple[str, ...], what: str) -> dict[str, Any]:
    """Loads `path` and checks its top-level variables; raises DatasetError naming the file."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: {what} not found; put it there or pass its path")
    try:
        contents = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)
    except NotImplementedError as e:
        raise DatasetError(f"{path}: MATLAB v7.3 (HDF5) files are not supported ({e}); "
                           f"use the {what} as released, or re-save it with '-v7'") from e
    except Exception as e:  # scipy raises ValueError, TypeError, OSError... for bad bytes
        raise DatasetError(f"{path}: not a readable MATLAB file ({type(e).__name__}: {e}); "
                           f"download the {what} again") from e
    missing = [name for name in required if name not in contents]
    if missing:
        raise DatasetError(f"{path}: missing variable(s) {missing}; this is not the {what} "
                           "as released, download it again")
    return contents


def as_list(value: Any) -> list[Any]:
    """A (squeezed) struct array, cell array or scalar as a Python list; empty -> []."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def get(struct: Any, name: str) -> Any:
    """`struct.name`, or None if `struct` is not a struct or has no such field."""
    if isinstance(struct, mat_struct) and name in struct._fieldnames:
        return getattr(struct, name)
    return None


def require(struct: Any, path: str, source: str) -> Any:
    """Follows a dotted `path` of fields; raises DatasetError naming the missing one."""
    for name in path.split("."):
        if get(struct, name) is None:
            raise DatasetError(f"{source}: field '{name}' (of '{path}') missing; this is "
                               "not the annotation file as released, download it again")
        struct = getattr(struct, name)
    return struct


def text(value: Any) -> str | None:
    """A MATLAB char array as str; None for an empty array or a non-text value."""
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.size == 1 and isinstance(value.item(), str):
        return value.item()
    return None


def number(value: Any) -> float | None:
    """A MATLAB numeric (or digit string) as float; None for empty or non-numeric values."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.item()
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return float(value)
    return None
