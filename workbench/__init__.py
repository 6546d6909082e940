"""HSTL Workbench: discover body-part hierarchies in gait silhouettes and search HSTL models over them."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
