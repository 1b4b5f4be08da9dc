"""Transports: the only code that talks to hosts (SSH via fabric/paramiko, local, fake)."""
