"""Playbooks: ordered steps naming a task (or a cluster procedure), its parameters and its hosts.

    name: converge
    steps:
      - name: state directory
        task: directory
        hosts: all            # all | head | workers | group:NAME | label:K=V | host:NAME
        params: {path: /etc/glm5cluster, mode: "0755"}

Parameters are validated against the task's ``Params`` when the playbook is loaded; every
problem is reported at once with its file and line.
"""

from __future__ import annotations

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
STEP_KEYS = {"name", "task", "params", "hosts"}


@dataclass(frozen=True)
class Step:
    index: int
    name: str
    task_name: str
    task: Any  # a tasks.base.Task or an engine.procedure.Procedure
    params: BaseModel
    hosts: str = "all"
    line: int | None = None

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
                                        f"unknown key {key!r}", "a step has name, task, params, hosts"))
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
        steps.append(Step(i, str(raw.get("name") or task_name), task_name, task, params, hosts, line))
    if problems:
        raise InputProblems(problems)
    return Playbook(str(name), file, tuple(steps))
