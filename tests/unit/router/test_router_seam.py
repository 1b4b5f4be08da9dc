"""The router as a service of the runtime seam: one definition, the seam's names, stop, state
probe, removal and logs (status, logs, down use them)."""

from __future__ import annotations

from typing import Any

from glm5cluster.cli.logs_cmd import log_command, router_target, targets
from glm5cluster.model.inventory import Inventory
from glm5cluster.model.nodes import resolve_nodes
from glm5cluster.runtime import ContainerRuntime, router_stem
from glm5cluster.runtime.rank import cluster_dir
from glm5cluster.runtime.router import router_runtime, router_service, router_stamp
from glm5cluster.runtime.survey import parse_survey
from glm5cluster.topology import plan_topology
from tests.unit.conftest import make_inventory


def router_inv(runtime: str = "venv", **router: Any) -> Inventory:
    return make_inventory(hosts=3, replicas={"router": {"host": "n2", **router}}, serving={"runtime": runtime})


def test_the_router_runs_in_the_venv_runtime_whatever_serving_runtime_says() -> None:
    for mode in ("venv", "docker"):
        inv = router_inv(mode)
        rt = router_runtime(inv)
        assert rt.kind == "unit" and rt.venv() == "/opt/glm5cluster/router-venv"
        svc = router_service(inv, rt)
        assert svc.stem == router_stem("t") and rt.target(svc.stem) == "glm5-t-router.service"
        assert svc.argv[0] == "/opt/glm5cluster/router-venv/bin/python" and svc.gpus is None


def test_the_survey_sees_the_router_unit_as_the_router_not_a_rank() -> None:
    inv = router_inv()
    svc = router_service(inv)
    unit = router_runtime(inv).install(svc).definition
    desc = next(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("Description="))
    found = parse_survey("t", f"unit\tglm5-t-router.service\tactive\t{desc}\n")
    assert [(i.stem, i.replica, i.rank) for i in found.items] == [("glm5-t-router", None, None)]


def test_the_launch_stamp_survives_a_partial_down_and_goes_with_the_unit() -> None:
    stamp = router_stamp("t")
    assert not stamp.startswith(cluster_dir("t") + "/")  # a partial down removes that directory
    rt = router_runtime(router_inv())
    assert "rm -rf -- /etc/systemd/system/glm5-t-router.service.d" in rt.remove_script(["glm5-t-router.service"])
    assert stamp.startswith("/etc/systemd/system/glm5-t-router.service.d/")


def test_a_container_runtime_would_honour_the_services_restart_and_environment() -> None:
    svc = router_service(router_inv())
    argv = ContainerRuntime("0.5.23").run_argv(svc)
    assert argv[argv.index("--restart") + 1] == "on-failure" and argv[argv.index("--env") + 1] == "NO_COLOR=1"


def test_logs_router_reads_the_router_through_its_runtime() -> None:
    inv = router_inv()
    topo = plan_topology(inv, resolve_nodes(inv))
    t = router_target(inv, topo)
    assert (t.host, t.prefix, t.name) == ("n2", "n2 router", "glm5-t-router.service")
    cmd = log_command(t, 5, None, False)
    assert cmd.script == "journalctl -u glm5-t-router.service -o short-iso-precise --no-pager -q -n 5"
    assert all(x.replica is not None for x in targets(inv, topo, (), ()))
