"""The server entry point, and how the API key reaches SGLang without entering argv.

SGLang takes its API key only as ``--api-key`` (no environment variable was found for it in
the 0.5.23 option table or sources). A key in argv is readable by every local user through
``/proc/<pid>/cmdline`` and ends up in ``ps`` output, so when ``serving.secrets.api_key_env``
is set the head starts SGLang through a tiny in-process launcher: it pops the key from the
environment (filled from the mode-0600 secrets file by systemd's ``EnvironmentFile=`` or
docker's ``--env-file``), appends ``--api-key`` to ``sys.argv`` in memory and runs
``sglang.launch_server`` as ``__main__``. Other ranks never receive the key.
"""

from __future__ import annotations

LAUNCHER = (
    "import os, runpy, sys; "
    "k = os.environ.pop(sys.argv[1], ''); "
    "k or sys.exit('glm5cluster: the API key variable ' + sys.argv[1] + ' is empty or unset'); "
    "sys.argv = [sys.argv[0]] + sys.argv[2:] + ['--api-key', k]; "
    "runpy.run_module('sglang.launch_server', run_name='__main__', alter_sys=True)"
)
ENTRY_MODULE = "sglang.launch_server"


def entry_argv(python: str, api_key_env: str | None = None) -> list[str]:
    """The argv before the server arguments: ``python -m sglang.launch_server`` or the launcher.

    With the launcher, the first argument after ``-c <code>`` is the *name* of the variable
    that holds the key (never its value).
    """
    if api_key_env:
        return [python, "-c", LAUNCHER, api_key_env]
    return [python, "-m", ENTRY_MODULE]
