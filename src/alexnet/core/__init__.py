"""Lowest layer: errors, devices and precision, atomic IO, seeding. Imports nothing of ours."""

from .errors import UserError, did_you_mean
from .io import atomic_open, atomic_save, atomic_write, atomic_write_json, safe_torch_load

__all__ = ["UserError", "did_you_mean", "atomic_open", "atomic_save", "atomic_write",
           "atomic_write_json", "safe_torch_load"]
