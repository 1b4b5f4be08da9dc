"""Remote-state probes: each fact is a command plus a pure parser tested on captured output."""
