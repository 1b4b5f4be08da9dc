"""Every service of one cluster on a host, whichever runtime or topology started it.

Names encode the cluster (``glm5-<cluster>-r<i>`` for replica i, ``glm5-<cluster>-router``;
units add ``.service``; containers are also labelled ``glm5cluster.cluster=<cluster>``), so a
listing by name pattern plus an exact-match filter finds this cluster's services and never
another's: the pattern ``glm5-a-*`` also lists ``glm5-a-r1-r0.service`` (cluster ``a-r1``),
which the exact regex ``^glm5-a-(r[0-9]+|router)\\.service$`` drops.

Read-only; status, launch, preflight (who holds a port) and down read it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from glm5cluster.commands import CommandResult
from glm5cluster.runtime.base import CLUSTER_LABEL, RANK_LABEL, Kind, cluster_prefix
from glm5cluster.runtime.unit import UNIT_DIR

_DESC_RANK = re.compile(r"\brank (\d+)/\d+")
MARK = "@@glm5cluster:survey@@"


@dataclass(frozen=True)
class Item:
    kind: Kind
    name: str  # unit or container name
    stem: str  # glm5-<cluster>-r<i> | glm5-<cluster>-router
    replica: int | None  # None: not a rank (the router)
    rank: int | None  # from the unit's Description or the container's label
    state: str  # systemd ActiveState, or the container status
    identity: str = ""  # the container id (a port holder's cgroup names it)

    @property
    def running(self) -> bool:
        return self.state in ("active", "activating", "reloading", "deactivating", "running",
                              "restarting", "paused")

    @property
    def runtime_mode(self) -> str:
        return "venv" if self.kind == "unit" else "docker"

    def owns(self, cgroup: str) -> bool:
        """Whether a process in ``cgroup`` (``/proc/PID/cgroup``) belongs to this service."""
        if self.kind == "unit":
            return f"/{self.name}" in cgroup
        return bool(self.identity) and self.identity in cgroup


@dataclass(frozen=True)
class Survey:
    units: tuple[Item, ...] = ()
    containers: tuple[Item, ...] = ()
    config_dir: str | None = None
    docker_error: str = ""

    @property
    def items(self) -> tuple[Item, ...]:
        return self.units + self.containers

    @property
    def empty(self) -> bool:
        return not self.items and self.config_dir is None

    def owner_of(self, cgroup: str) -> Item | None:
        return next((i for i in self.items if i.running and i.owns(cgroup)), None)

    def others(self, kind: str, name: str) -> tuple[Item, ...]:
        """Everything of the cluster here except the service ``name`` of ``kind``."""
        return tuple(i for i in self.items if not (i.kind == kind and i.name == name))

    def describe(self) -> str:
        bits = [f"{i.name} ({i.state})" for i in self.items]
        if self.config_dir:
            bits.append(self.config_dir)
        return ", ".join(bits) or "nothing"


def survey_script(cluster: str, config_dir: str) -> str:
    """Read-only: list this cluster's units (files and loaded), containers and config dir, with
    one ``systemctl show`` for every unit and one ``docker ps`` for every container."""
    prefix = cluster_prefix(cluster)
    glob = shlex.quote(prefix) + "*.service"
    name = shlex.quote(f"name=^/?{prefix}")
    fmt = shlex.quote("{{.Names}}\t{{.Status}}\t{{.Label \"" + RANK_LABEL + "\"}}\t"
                      "{{.Label \"" + CLUSTER_LABEL + "\"}}\t{{.ID}}")
    cdir = shlex.quote(config_dir)
    return f"""\
echo '{MARK}'
units=$({{ for f in {UNIT_DIR}/{glob}; do [ -e "$f" ] && echo "${{f##*/}}"; done
  systemctl list-units --all --plain --no-legend --full {glob} | awk '{{print $1}}'; }} | sort -u)
if [ -n "$units" ]; then
  systemctl show -p Id,ActiveState,Description -- $units | awk '
    function out() {{ if (id != "") printf "unit\\t%s\\t%s\\t%s\\n", id, st, d; id = st = d = "" }}
    /^$/ {{ out(); next }}
    {{ k = substr($0, 1, index($0, "=") - 1); v = substr($0, index($0, "=") + 1) }}
    k == "Id" {{ id = v }} k == "ActiveState" {{ st = v }} k == "Description" {{ d = v }}
    END {{ out() }}'
fi
if command -v docker >/dev/null 2>&1; then
  err=$(mktemp)
  docker ps -a --no-trunc --filter {name} --format {fmt} 2>"$err" | sed 's/^/container\t/'
  [ -s "$err" ] && printf 'docker-error\\t%s\\n' "$(head -c 300 "$err" | tr '\\n' ' ')"
  rm -f "$err"
fi
if [ -d {cdir} ]; then printf 'dir\\t%s\\n' {cdir}; fi
true
"""


def container_state(status: str) -> str:
    """``docker ps``'s Status column (``Up 2 minutes``, ``Exited (0) 3 minutes ago``, ``Up 1 hour
    (Paused)``, ``Created``, ``Restarting (1) ...``, ``Dead``, ``Removal In Progress``) as the
    container's state word (``running``, ``exited``, ``paused``, ...)."""
    s = status.strip().lower()
    if s.startswith("up"):
        return "paused" if "(paused)" in s else "running"
    for word, state in (("exited", "exited"), ("created", "created"), ("restarting", "restarting"),
                        ("dead", "dead"), ("removal", "removing")):
        if s.startswith(word):
            return state
    return s or "unknown"


def parse_survey(cluster: str, text: str) -> Survey:
    """The survey's lines (anything before its mark is ignored)."""
    if MARK in text:
        text = text.split(MARK + "\n", 1)[1]
    prefix = re.escape(cluster_prefix(cluster))
    unit_re = re.compile(rf"^({prefix}(?:r(\d+)|router))\.service$")
    ctr_re = re.compile(rf"^({prefix}(?:r(\d+)|router))$")
    units: list[Item] = []
    containers: list[Item] = []
    cdir: str | None = None
    docker_error = ""
    for line in text.splitlines():
        f = line.split("\t")
        if f[0] == "unit" and len(f) >= 3:
            m = unit_re.match(f[1])
            if m:
                rank = _DESC_RANK.search(f[3]) if len(f) > 3 else None
                units.append(Item("unit", f[1], m.group(1), int(m.group(2)) if m.group(2) else None,
                                  int(rank.group(1)) if rank else None, f[2] or "unknown"))
        elif f[0] == "container" and len(f) >= 3:
            m = ctr_re.match(f[1])
            owner = f[4] if len(f) > 4 else ""
            if m and owner in (cluster, ""):
                rank_label = f[3] if len(f) > 3 else ""
                containers.append(Item("container", f[1], m.group(1), int(m.group(2)) if m.group(2) else None,
                                       int(rank_label) if rank_label.isdigit() else None, container_state(f[2]),
                                       f[5].strip() if len(f) > 5 else ""))
        elif f[0] == "dir" and len(f) >= 2:
            cdir = f[1]
        elif f[0] == "docker-error":
            docker_error = "\t".join(f[1:]).strip()
    return Survey(tuple(units), tuple(containers), cdir, docker_error)


def parse_survey_result(cluster: str, result: CommandResult) -> Survey:
    return parse_survey(cluster, result.stdout)
