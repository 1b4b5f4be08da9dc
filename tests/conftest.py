"""Session-wide setup for every test.

Ctrl-C: a test run started in the background by a non-interactive shell (a CI script's ``&``, a
``nohup``) inherits SIGINT *ignored*, and Python then never installs its KeyboardInterrupt handler:
the tests that deliver a real SIGINT (to this process, or to a CLI they start, which inherits the
disposition) would wait for an interrupt that never comes. Give the run SIGINT as a terminal would.
"""

from __future__ import annotations

import signal


def pytest_configure() -> None:
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
