"""The router as a service of the runtime seam: ``glm5-<cluster>-router``.

What runs: the real ``sglang-router`` (``python -m sglang_router.launch_router``, options of the
0.3.2 wheel's ``sglang_router/router_args.py``: ``--host``, ``--port``, ``--policy``,
``--health-check-interval-secs``, ``--log-level``; ``NO_COLOR`` keeps its log plain), started
with no workers, restarted by its runtime when it dies (it holds no GPU and no group).

How: always the venv runtime (a systemd unit running ``replicas.router.venv_path``), also when
``serving.runtime`` is docker. Running it in a container from the server's image was weighed
and left out: the image's sglang-router is whatever that image's release bundled, while the
pin ``replicas.router.version`` names the release whose ``/workers`` API glm5cluster speaks
(``facts/router.py``); the router host need not be a GPU host with a container engine, and a
tens-of-GB image for one light process is a poor trade. Names, install, start, the one
stop-with-grace, the state probe, removal and logs are the seam's (``runtime/unit.py``).

The launch stamp (``<digest> <InvocationID>``) lives in the unit's drop-in directory (systemd
reads only ``*.conf`` there): it goes with the unit when the router is removed, and survives a
partial ``down`` that removes ``/etc/glm5cluster/<cluster>`` but keeps the router.
"""

from __future__ import annotations

from glm5cluster.model.inventory import Inventory, RouterSpec
from glm5cluster.runtime.base import Service, router_stem
from glm5cluster.runtime.unit import UNIT_DIR, UnitRuntime

STOP_GRACE_S = 30  # the router's own --shutdown-grace-period-secs default is 180


def spec(inv: Inventory) -> RouterSpec:
    s = inv.replicas.router
    if s is None:
        raise ValueError("the inventory has no replicas.router")
    return s


def router_runtime(inv: Inventory) -> UnitRuntime:
    """The runtime of the router (the venv runtime whatever ``serving.runtime`` is: see above)."""
    return UnitRuntime(spec(inv).venv_path)


def router_stamp(cluster: str) -> str:
    return f"{UNIT_DIR}/{router_stem(cluster)}.service.d/glm5cluster.launched"


def router_argv(inv: Inventory, python: str) -> list[str]:
    s = spec(inv)
    return [python, "-m", "sglang_router.launch_router",
            "--host", "0.0.0.0", "--port", str(s.port), "--policy", s.policy,
            "--health-check-interval-secs", str(s.health_check_interval),
            "--log-level", "info"]


def router_service(inv: Inventory, rt: UnitRuntime | None = None) -> Service:
    rt = rt or router_runtime(inv)
    cluster = inv.cluster.name
    return Service(
        stem=router_stem(cluster),
        description=f"glm5cluster router of cluster {cluster} (sglang-router {spec(inv).version})",
        argv=tuple(router_argv(inv, rt.python)),
        environment=(("NO_COLOR", "1"),),
        restart_on_failure=True,
        memlock_unlimited=False,
        stop_timeout=STOP_GRACE_S,
        stamp_path=router_stamp(cluster),
    )
