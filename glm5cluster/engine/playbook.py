"""Playbooks: ordered steps naming a task (or a cluster procedure), its parameters and its hosts.

    name: converge
    steps:
      - name: state directory
        task: directory
        hosts: all            # all | head | workers | group:NAME | label:K=V | host:NAME
        params: {path: /etc/glm5cluster, mode: "0755"}

A step may instead call the user's own Python function (``engine/userstep.py``):
``python: site_steps.py:mount_scratch`` (a file next to the playbook, or ``package.module:fn``);
its params must fit the function's signature. ``at:`` places a step of a site playbook given
to ``up --site`` (``before_stack``, ``before_launch`` or ``after_ready``; see ``splice_site``).

Parameters are validated against the task's ``Params`` when the playbook is loaded; every
problem is reported at once with its file and line.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from glm5cluster.errors import InputProblems, Problem
from glm5cluster.model.yaml_source import format_path, parse_yaml

SELECTOR_RE = re.compile(r"^(all|head|workers|group:[a-z0-9-]+|label:[A-Za-z0-9_.-]+=[A-Za-z0-9_.-]*"
                         r"|host:[a-z0-9-]+)$")
STEP_KEYS = {"name", "task", "python", "params", "hosts", "at"}
SITE_POINTS = ("before_stack", "before_launch", "after_ready")


@dataclass(frozen=True)
class Step:
    index: int
    name: str
    task_name: str
    task: Any  # a tasks.base.Task or an engine.procedure.Procedure
    params: BaseModel
    hosts: str = "all"
    line: int | None = None
    at: str | None = None  # where `up --site` places it

    @property
    def is_procedure(self) -> bool:
        return hasattr(self.task, "run") and not hasattr(self.task, "plan")


@dataclass(frozen=True)
class Playbook:
    name: str
    path: str
    steps: tuple[Step, ...]


class _DefaultTasks(Mapping[str, Any]):
    """Tasks, then procedures: the procedures (and what they import) load only when a playbook
    names something that is not a task, or when every name is listed (start-up time)."""

    def __init__(self) -> None:
        from glm5cluster.tasks.registry import TASKS

        self._tasks = TASKS
        self._all: dict[str, Any] | None = None

    def _everything(self) -> dict[str, Any]:
        if self._all is None:
            from glm5cluster.engine.procedures import PROCEDURES

            self._all = {**dict(self._tasks), **PROCEDURES}
        return self._all

    def __getitem__(self, name: str) -> Any:
        if name in self._tasks:
            return self._tasks[name]
        return self._everything()[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tasks or name in self._everything()

    def __iter__(self) -> Iterator[str]:
        return iter(self._everything())

    def __len__(self) -> int:
        return len(self._everything())


def default_tasks() -> Mapping[str, Any]:
    """Every task and procedure a playbook may name (the explicit registries, rule 12)."""
    return _DefaultTasks()


def _param_problems(file: str, lines: Any, base: str, err: ValidationError,
                    params_type: type[BaseModel]) -> list[Problem]:
    out = []
    for e in err.errors():
        loc = tuple(e["loc"])
        path = format_path((*_split(base), *loc)) if loc else base
        line = lines(path)
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(params_type.model_fields)) or "none"
            out.append(Problem(file, line, path, f"unknown parameter {loc[-1]!r}",
                               f"this task takes: {allowed}"))
        elif e["type"] == "missing":
            out.append(Problem(file, line, path, "missing required parameter",
                               "add it under params"))
        else:
            out.append(Problem(file, line, path, e["msg"]))
    return out


def _split(path: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for m in re.finditer(r"([A-Za-z0-9_-]+)|\[(\d+)\]", path):
        parts.append(m.group(1) if m.group(1) else int(m.group(2)))
    return tuple(parts)


def load_playbook(path: str | Path, tasks: Mapping[str, Any] | None = None) -> Playbook:
    """Parse and validate a playbook; raise ``InputProblems`` listing every problem."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise InputProblems([Problem(file, None, "", f"cannot read playbook: {e.strerror}")]) from e
    src = parse_yaml(text, file)
    if src.problems:
        raise InputProblems(src.problems)
    registry = tasks if tasks is not None else default_tasks()
    problems: list[Problem] = []
    data = src.data
    if not isinstance(data, dict):
        raise InputProblems([Problem(file, 1, "", "a playbook is a mapping with `name` and `steps`")])
    for key in data:
        if key not in ("name", "steps", "description"):
            problems.append(Problem(file, src.line_of(str(key)), str(key), f"unknown key {key!r}",
                                    "a playbook has name, description and steps"))
    name = data.get("name") or Path(file).stem
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append(Problem(file, src.line_of("steps"), "steps", "`steps` must be a non-empty list"))
        raise InputProblems(problems)
    steps: list[Step] = []
    for i, raw in enumerate(raw_steps):
        where = f"steps[{i}]"
        line = src.line_of(where)
        if not isinstance(raw, dict):
            problems.append(Problem(file, line, where, "a step is a mapping with name, task, params, hosts"))
            continue
        for key in raw:
            if key not in STEP_KEYS:
                problems.append(Problem(file, src.line_of(f"{where}.{key}"), f"{where}.{key}",
                                        f"unknown key {key!r}",
                                        "a step has name, task (or python), params, hosts, at"))
        at = raw.get("at")
        if at is not None and at not in SITE_POINTS:
            problems.append(Problem(file, src.line_of(f"{where}.at"), f"{where}.at",
                                    f"unknown point {at!r}", f"use one of: {', '.join(SITE_POINTS)}"))
        if "python" in raw:
            step = _python_step(file, src.line_of, where, raw, i, problems)
            if step is not None:
                steps.append(dataclasses.replace(step, at=at))
            continue
        task_name = raw.get("task")
        if not isinstance(task_name, str) or task_name not in registry:
            known = ", ".join(sorted(registry))
            problems.append(Problem(file, src.line_of(f"{where}.task"), f"{where}.task",
                                    f"unknown task {task_name!r}", f"known tasks: {known}"))
            continue
        hosts = str(raw.get("hosts", "all"))
        if not SELECTOR_RE.match(hosts):
            problems.append(Problem(file, src.line_of(f"{where}.hosts"), f"{where}.hosts",
                                    f"bad host selector {hosts!r}",
                                    "use all, head, workers, group:NAME, label:KEY=VALUE or host:NAME"))
        task = registry[task_name]
        params_raw = raw.get("params") or {}
        if not isinstance(params_raw, dict):
            problems.append(Problem(file, src.line_of(f"{where}.params"), f"{where}.params",
                                    "params must be a mapping"))
            continue
        try:
            params = task.Params.model_validate(params_raw)
        except ValidationError as e:
            problems.extend(_param_problems(file, src.line_of, f"{where}.params", e, task.Params))
            continue
        steps.append(Step(i, str(raw.get("name") or task_name), task_name, task, params, hosts, line,
                          at))
    if problems:
        raise InputProblems(problems)
    return Playbook(str(name), file, tuple(steps))


def _python_step(file: str, lines: Any, where: str, raw: dict[str, Any], index: int,
                 problems: list[Problem]) -> Step | None:
    """A ``python:`` step: the user's function, imported and checked against its params."""
    from glm5cluster.engine.userstep import REF_HINT, LoadError, UserStep

    ref = raw.get("python")
    line = lines(f"{where}.python")
    if "task" in raw:
        problems.append(Problem(file, line, where, "a step has either task or python, not both"))
        return None
    if not isinstance(ref, str):
        problems.append(Problem(file, line, f"{where}.python", "python must be a string", REF_HINT))
        return None
    try:
        user = UserStep.load(ref, Path(file).resolve().parent)
    except LoadError as e:
        problems.append(Problem(file, line, f"{where}.python", str(e), REF_HINT))
        return None
    params_raw = raw.get("params") or {}
    if not isinstance(params_raw, dict):
        problems.append(Problem(file, lines(f"{where}.params"), f"{where}.params",
                                "params must be a mapping"))
        return None
    why = user.params_problem(params_raw)
    if why is not None:
        problems.append(Problem(file, lines(f"{where}.params"), f"{where}.params", why,
                                f"the function is in {user.source}"))
        return None
    hosts = str(raw.get("hosts", "all"))
    if not SELECTOR_RE.match(hosts):
        problems.append(Problem(file, lines(f"{where}.hosts"), f"{where}.hosts",
                                f"bad host selector {hosts!r}",
                                "use all, head, workers, group:NAME, label:KEY=VALUE or host:NAME"))
        return None
    return Step(index, str(raw.get("name") or ref), user.name, user,
                user.Params.model_validate(params_raw), hosts, lines(where))


def splice_site(main: Playbook, site: Playbook) -> Playbook:
    """``main`` (the up playbook) with the site playbook's steps at their ``at:`` points:
    ``before_stack`` (default: before the first GPU-stack step), ``before_launch`` (before the
    launch step), ``after_ready`` (after readiness, before the smoke test)."""
    def first(pred: Any, default: int) -> int:
        return next((i for i, s in enumerate(main.steps) if pred(s)), default)

    n = len(main.steps)
    points = {
        "before_stack": first(lambda s: s.task_name.startswith(("gpu.", "sglang.")), n),
        "before_launch": first(lambda s: s.task_name == "launch", n),
        "after_ready": first(lambda s: s.task_name == "readiness", n - 1) + 1,
    }
    extra: dict[int, list[Step]] = {}
    for step in site.steps:
        extra.setdefault(points[step.at or "before_stack"], []).append(step)
    out: list[Step] = []
    for i in range(n + 1):
        out.extend(extra.get(i, []))
        if i < n:
            out.append(main.steps[i])
    steps = tuple(dataclasses.replace(s, index=i) for i, s in enumerate(out))
    return Playbook(main.name, main.path, steps)
