"""Start-up cost guards: what the converged re-run path must NOT pay for at import time.

Each check runs in a fresh interpreter (the modules under test are imported once per process).
The numbers behind these choices: benchmarks/results/startup.md.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PLAYBOOKS = Path(__file__).resolve().parents[3] / "playbooks"


def _py(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_paramiko_import_does_not_execute_invoke() -> None:
    # paramiko.config does `import invoke` (~50 ms); the connect package defers it.
    out = _py("""
        import sys
        import glm5cluster.connect.ssh
        import paramiko.config
        print(sorted(m for m in sys.modules if m.startswith("invoke.")))
    """)
    assert out == "[]"


def test_deferred_invoke_still_runs_match_exec() -> None:
    # Behaviour is unchanged: a `Match exec` line of an ssh config still runs through invoke.
    out = _py("""
        import glm5cluster.connect.ssh
        import paramiko
        cfg = paramiko.SSHConfig.from_text('Match exec "true"\\n  User bob\\nMatch exec "false"\\n  Port 2222\\n')
        r = cfg.lookup("h")
        from invoke import Context
        print(r["user"], r.get("port", "22"), Context.__module__)
    """)
    assert out == "bob 22 invoke.context"


def test_models_are_built_on_first_use_only() -> None:
    # Importing every task and the inventory builds no validator; validating builds only what
    # is validated (the inventory), and validation itself still works and still refuses.
    out = _py("""
        import glm5cluster.tasks.registry as reg
        tasks = list(reg.TASKS.values())  # import and build every task
        from glm5cluster.model import inventory as inv
        from glm5cluster.tasks.base import Params
        def built(cls): return cls.__pydantic_complete__
        subs = [c for c in Params.__subclasses__()]
        before = sum(built(c) for c in subs), built(inv.Inventory), len(subs)
        h = inv.HostSpec.model_validate({"name": "node-1", "address": "10.0.0.1"})
        try:
            inv.HostSpec.model_validate({"name": "node-1", "address": "10.0.0.1", "bogus": 1})
            refused = False
        except Exception:
            refused = True
        print(before[0], before[1], before[2] > 5, built(inv.HostSpec), h.name, refused)
    """)
    assert out == "0 False True True node-1 True"


def test_registry_imports_only_the_tasks_a_playbook_names() -> None:
    # The converge playbook names facts, probe, directory, file, systemd_unit, disk_free: the GPU
    # stack, runtime, router and weights task modules (and what they import) stay unimported.
    out = _py(f"""
        import sys
        from glm5cluster.engine.playbook import load_playbook
        pb = load_playbook({str(PLAYBOOKS / "converge.yaml")!r})
        print(len(pb.steps), sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("glm5cluster.tasks.")))
    """)
    assert out == "7 ['base', 'files', 'probe', 'registry', 'systemd']"


def test_lazy_registry_builds_each_task_once_and_aliases_share_it() -> None:
    from glm5cluster.tasks import registry
    from glm5cluster.tasks.base import Task

    assert registry.TASKS["probe"] is registry.TASKS["command"]
    assert registry.TASKS["facts"] is registry.TASKS["facts"]
    for name, task in registry.TASKS.items():
        assert isinstance(task, Task), name
    assert "nope" not in registry.TASKS and len(registry.TASKS) == len(registry.SPECS)
