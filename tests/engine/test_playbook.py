from __future__ import annotations

from pathlib import Path

import pytest

from glm5cluster.engine.playbook import load_playbook
from glm5cluster.errors import InputProblems
from tests.engine.fakes import TASKS


def problems(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "pb.yaml"
    f.write_text(text)
    with pytest.raises(InputProblems) as e:
        load_playbook(f, TASKS)
    return [str(p).replace(str(f), "pb.yaml") for p in e.value.problems]


def test_valid_playbook(tmp_path: Path) -> None:
    f = tmp_path / "pb.yaml"
    f.write_text("name: demo\nsteps:\n  - name: one\n    task: set_value\n    hosts: group:gpu\n"
                 "    params:\n      key: k\n      value: v\n")
    pb = load_playbook(f, TASKS)
    assert pb.name == "demo" and pb.steps[0].params.key == "k" and pb.steps[0].hosts == "group:gpu"
    assert pb.steps[0].line == 3


def test_unknown_task_with_line(tmp_path: Path) -> None:
    got = problems(tmp_path, "steps:\n  - name: one\n    task: nope\n")
    assert got[0].startswith("pb.yaml:3: steps[0].task: unknown task 'nope'")
    assert "known tasks: run_failing, set_value, use_secret" in got[0]


def test_unknown_and_missing_params_with_lines(tmp_path: Path) -> None:
    got = problems(tmp_path, "steps:\n  - task: set_value\n    params:\n      key: k\n"
                             "      valeu: v\n")
    assert any(p.startswith("pb.yaml:5: steps[0].params.valeu: unknown parameter 'valeu'") for p in got)
    assert any("steps[0].params.value: missing required parameter" in p for p in got)
    assert any("this task takes: key, mode, value" in p for p in got)


def test_bad_type_selector_and_keys(tmp_path: Path) -> None:
    got = problems(tmp_path, "steps:\n  - task: run_failing\n    hosts: everyone\n"
                             "    params: {exit_code: many}\n    when: x\n")
    text = "\n".join(got)
    assert "pb.yaml:3: steps[0].hosts: bad host selector 'everyone'" in text
    assert "pb.yaml:4: steps[0].params.exit_code:" in text
    assert "pb.yaml:5: steps[0].when: unknown key 'when'" in text


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    got = problems(tmp_path, "steps:\n  - task: set_value\n   bad: [\n")
    assert got[0].startswith("pb.yaml:")
    assert "YAML syntax error" in got[0]


def test_empty_steps(tmp_path: Path) -> None:
    assert "non-empty list" in problems(tmp_path, "name: x\nsteps: []\n")[0]
