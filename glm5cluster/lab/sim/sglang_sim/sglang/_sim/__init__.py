"""Internals of the simulator (not part of the real SGLang API)."""
