"""The server entry point, and how the API key reaches SGLang without entering argv.

SGLang takes its API key only as ``--api-key`` (no environment variable was found for it in
the 0.5.23 option table or sources). A key in argv is readable by every local user through
``/proc/<pid>/cmdline`` and ends up in ``ps`` output, so when ``serving.secrets.api_key_env``
is set the head starts SGLang through a tiny in-process launcher: it pops the key from the
environment (filled from the mode-0600 secrets file by systemd's ``EnvironmentFile=``) or,
for the docker runtime, from that file bind-mounted read-only (``NAME@FILE``), appends ``--api-key`` to ``sys.argv`` in memory and runs
``sglang.launch_server`` as ``__main__``. Other ranks never receive the key.
"""

from __future__ import annotations

LAUNCHER = (
    "import os, runpy, sys; "
    "n, _, f = sys.argv[1].partition('@'); "
    "k = os.environ.pop(n, ''); "
    "k = k or (next((l[len(n) + 1:].rstrip('\\n') for l in open(f) if l.startswith(n + '=')), '') "
    "if f and os.path.exists(f) else ''); "
    "k or sys.exit('glm5cluster: the API key variable ' + n + ' is empty or unset'); "
    "sys.argv = [sys.argv[0]] + sys.argv[2:] + ['--api-key', k]; "
    "runpy.run_module('sglang.launch_server', run_name='__main__', alter_sys=True)"
)
# docker runtime: the secrets file is bind-mounted read-only here (``--env-file`` would put the
# key into the container's configuration, which ``docker inspect`` shows to the docker group)
CONTAINER_SECRETS = "/run/glm5cluster/secrets.env"
ENTRY_MODULE = "sglang.launch_server"


def entry_argv(python: str, api_key_env: str | None = None, secrets_file: str | None = None) -> list[str]:
    """The argv before the server arguments: ``python -m sglang.launch_server`` or the launcher.

    With the launcher, the first argument after ``-c <code>`` is the *name* of the variable
    that holds the key (never its value), with ``@<file>`` when the launcher reads the key from
    that file's ``NAME=value`` line (docker: the read-only bind-mounted secrets file).
    """
    if api_key_env:
        return [python, "-c", LAUNCHER, f"{api_key_env}@{secrets_file}" if secrets_file else api_key_env]
    return [python, "-m", ENTRY_MODULE]
