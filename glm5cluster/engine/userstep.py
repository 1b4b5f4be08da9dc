"""Users' own site steps: a playbook step that calls a Python function with a fabric Connection.

    steps:
      - name: scratch filesystem
        python: site_steps.py:mount_scratch   # FILE.py (next to the playbook) or package.module
        hosts: all
        params: {device: /dev/nvme1n1, path: /scratch}

    # site_steps.py
    from glm5cluster.engine.userstep import changed, ok

    def mount_scratch(c, check, device, path="/scratch"):
        if c.run(f"mountpoint -q {path}", warn=True).ok:
            return ok(f"{path} is mounted")
        if check:
            return changed(f"would mount {device} on {path}")
        c.sudo(f"mkdir -p {path} && mount {device} {path}")
        return changed(f"mounted {device} on {path}")

The function gets ``c``, a ``fabric.Connection`` bound to the host (connected by the engine:
strict host keys from the inventory's known_hosts, jump host, identity, timeouts; ``c.sudo`` is
``sudo -n``), ``check`` (True under ``--check`` and in the plan pass: change nothing, say what
would change) and the step's ``params`` as keyword arguments. It returns ``ok(msg)``,
``changed(msg)`` or ``failed(msg, hint)`` (or ``(changed: bool, msg)``); a command that exits
non-zero (without ``warn=True``) fails the host with its exit code and output. It runs inside the
engine: fan-out over the step's hosts (``--forks``), ``--limit``, ``--check``, the recap and the
per-host run log (every command and its output). The function must be idempotent.

fabric is imported only when such a step runs (``connect/fabric_conn.py``); loading a playbook
imports the user's module and checks that the params fit the function's signature.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from glm5cluster.commands import CommandResult
from glm5cluster.engine.procedure import ClusterContext
from glm5cluster.engine.report import Status, StepResult
from glm5cluster.errors import GlmError, HostKeyError, TransportError

REF_HINT = "write python: FILE.py:function (FILE next to the playbook) or python: package.module:function"


@dataclass(frozen=True)
class Outcome:
    """What a site step returns: ``ok``, ``changed`` or ``failed``."""

    status: Status
    message: str
    hint: str | None = None


def ok(message: str = "") -> Outcome:
    return Outcome(Status.OK, message)


def changed(message: str = "") -> Outcome:
    return Outcome(Status.CHANGED, message)


def failed(message: str, hint: str | None = None) -> Outcome:
    return Outcome(Status.FAILED, message, hint)


class UserParams(BaseModel):
    """Any keys: they are checked against the function's signature when the playbook loads."""

    model_config = ConfigDict(frozen=True, extra="allow")


class LoadError(Exception):
    """The reference cannot be resolved (message for the playbook's file:line problem)."""


def _import(ref: str, base: Path) -> tuple[Callable[..., Any], str]:
    if ref.count(":") != 1:
        raise LoadError(f"bad python step {ref!r}")
    where, func = ref.split(":")
    if where.endswith(".py"):
        path = (base / where).resolve()
        if not path.is_file():
            raise LoadError(f"no such file {path}")
        name = f"glm5cluster_site_{abs(hash(str(path)))}"
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as e:  # noqa: BLE001 - the user's module: report, never a traceback
                raise LoadError(f"importing {path} failed: {type(e).__name__}: {e}") from e
            sys.modules[name] = module
    else:
        try:
            module = importlib.import_module(where)
        except Exception as e:  # noqa: BLE001
            raise LoadError(f"cannot import {where}: {type(e).__name__}: {e}") from e
    fn = getattr(module, func, None)
    if not callable(fn):
        raise LoadError(f"{where} has no function {func!r}")
    return fn, str(getattr(module, "__file__", where))


class UserStep:
    """A procedure (cluster-wide step) running the user's function on every host of the step."""

    Params = UserParams

    def __init__(self, ref: str, fn: Callable[..., Any], source: str) -> None:
        self.name = f"python:{ref}"
        self.ref = ref
        self.fn = fn
        self.source = source

    @classmethod
    def load(cls, ref: str, base: Path) -> UserStep:
        fn, source = _import(ref, base)
        return cls(ref, fn, source)

    def params_problem(self, params: Mapping[str, Any]) -> str | None:
        """Why ``params`` do not fit the function (None when they do)."""
        try:
            inspect.signature(self.fn).bind(None, check=False, **params)
        except TypeError as e:
            return f"params do not fit {self.ref}: {e}"
        return None

    def run(self, params: UserParams, ctx: ClusterContext) -> dict[str, StepResult]:
        from glm5cluster.connect.pool import ConnectOptions

        kwargs = dict(params.model_extra or {})
        options = getattr(ctx._pool, "options", None) or ConnectOptions()  # noqa: SLF001
        opened: list[Any] = []
        lock = threading.Lock()

        def close_all() -> None:
            with lock:
                conns = list(opened)
            for c in conns:
                try:
                    c.close()
                except Exception:  # noqa: BLE001, S112 - closing after an interrupt
                    continue

        ctx.on_interrupt(close_all)

        def one(host: str) -> StepResult:
            def record(res: CommandResult) -> None:
                if ctx._log is not None:  # noqa: SLF001
                    ctx._log.write(host, f"[{ctx.step}] $ {res.command}\n  => exit {res.exit_code}"
                                   + (f"\n{res.tail()}" if res.tail() else ""))

            c = connect(ctx.nodes[host], options, record)
            with lock:
                opened.append(c)
            try:
                return self._call(c, host, ctx, kwargs)
            finally:
                c.close()

        results: dict[str, StepResult] = {}
        for host, hr in ctx.fan_out(one).items():
            if hr.error is not None:
                results[host] = _error(hr.error)
            else:
                assert hr.value is not None
                results[host] = hr.value
        return results

    def _call(self, c: Any, host: str, ctx: ClusterContext, kwargs: dict[str, Any]) -> StepResult:
        try:
            out = self.fn(c, check=ctx.check, **kwargs)
        except (GlmError, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 - the user's code: every host gets a result
            res = getattr(e, "result", None)
            if res is not None and hasattr(res, "exited"):  # invoke.UnexpectedExit
                cmd = str(getattr(res, "command", ""))
                tail = "\n".join((str(res.stderr) or str(res.stdout)).strip().splitlines()[-10:])
                return StepResult(Status.FAILED, message=f"{cmd} exited {res.exited}",
                                  exit_code=int(res.exited), tail=tail, command=cmd,
                                  hint=f"from site step {self.ref}; the run log has its output")
            if ctx._log is not None:  # noqa: SLF001
                ctx._log.write(host, f"[{ctx.step}] {traceback.format_exc()}")  # noqa: SLF001
            return StepResult(Status.FAILED, message=f"{self.ref} raised {type(e).__name__}: {e}",
                              hint="the traceback is in this host's run log")
        return _result(out, self.ref, ctx.check)


def _result(out: Any, ref: str, check: bool) -> StepResult:
    if isinstance(out, Outcome):
        status, message, hint = out.status, out.message, out.hint
    elif isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], bool):
        status, message, hint = (Status.CHANGED if out[0] else Status.OK), str(out[1]), None
    else:
        return StepResult(Status.FAILED, message=f"{ref} returned {out!r}",
                          hint="return ok(msg), changed(msg) or failed(msg) "
                               "from glm5cluster.engine.userstep")
    if status is Status.FAILED:
        return StepResult(status, message=message, hint=hint)
    return StepResult(status, message)


def _error(error: BaseException) -> StepResult:
    if isinstance(error, HostKeyError | TransportError):
        return StepResult(Status.UNREACHABLE, message=error.message, hint=error.hint)
    if isinstance(error, GlmError):
        return StepResult(Status.FAILED, message=error.message, hint=error.hint)
    return StepResult(Status.FAILED, message=f"{type(error).__name__}: {error}")


def _default_connect(node: Any, options: Any, on_command: Callable[[CommandResult], None]) -> Any:
    from glm5cluster.connect.fabric_conn import fabric_connection  # fabric: only here

    return fabric_connection(node, options, on_command)


# how a host's connection is made; tests replace it (the fake edge: no SSH server)
connect: Callable[[Any, Any, Callable[[CommandResult], None]], Any] = _default_connect
