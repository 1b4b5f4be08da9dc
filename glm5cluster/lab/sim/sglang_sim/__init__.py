"""Source of the lab's simulated `sglang` package (see build.py). Not imported by the product."""
