"""Typed, frozen inventory records, the hardware catalog and the YAML loader."""
