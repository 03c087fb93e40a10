"""Utilities with PyTorch's paths: ``ember.utils.data``."""

from . import data
