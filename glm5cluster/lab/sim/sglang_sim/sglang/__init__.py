"""Simulated SGLang 0.5.23 for the glm5cluster rehearsal lab (stdlib only; no GPU work)."""

from sglang.version import __version__

__all__ = ["__version__"]
