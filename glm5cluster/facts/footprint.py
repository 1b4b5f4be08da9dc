"""What one cluster has on a host: its SGLang units, its containers, its config directory.

Names encode the cluster (``render.unit_name``: ``glm5-<cluster>-r<i>.service``; containers
``glm5-<cluster>-r<i>`` labelled ``glm5cluster.cluster=<cluster>``), so a listing by name
pattern plus an exact-match filter finds this cluster's things and never another's: the
pattern ``glm5-a-r*`` also lists ``glm5-a-r1-r0.service`` (cluster ``a-r1``), which the exact
regex ``^glm5-a-r[0-9]+\\.service$`` drops.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from glm5cluster.commands import CommandResult
from glm5cluster.facts.units import UNIT_DIR

CLUSTER_LABEL = "glm5cluster.cluster"
RANK_LABEL = "glm5cluster.rank"
_DESC_RANK = re.compile(r"\brank (\d+)/\d+")


@dataclass(frozen=True)
class Item:
    kind: str  # "unit" | "container"
    name: str
    replica: int
    rank: int | None  # from the unit's Description or the container's label
    state: str  # systemd ActiveState, or the container status

    @property
    def running(self) -> bool:
        return self.state in ("active", "activating", "reloading", "deactivating", "running",
                              "restarting", "paused")


@dataclass(frozen=True)
class Footprint:
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

    def describe(self) -> str:
        bits = [f"{i.name} ({i.state})" for i in self.items]
        if self.config_dir:
            bits.append(self.config_dir)
        return ", ".join(bits) or "nothing"


def footprint_script(cluster: str, prefix: str, config_dir: str) -> str:
    """Read-only: list this cluster's units (files and loaded), containers and config dir.

    ``prefix`` is the name of replica N without the N (``glm5-<cluster>-r``, from
    ``render.unit_stem``); ``config_dir`` the cluster's directory of env/secrets files."""
    glob = shlex.quote(prefix) + "*.service"
    label = shlex.quote(f"label={CLUSTER_LABEL}={cluster}")
    name = shlex.quote(f"name=^/?{prefix}")
    fmt_rank = shlex.quote("{{.State.Status}}\t{{index .Config.Labels \"" + RANK_LABEL + "\"}}\t"
                           "{{index .Config.Labels \"" + CLUSTER_LABEL + "\"}}")
    cdir = shlex.quote(config_dir)
    return f"""\
{{ for f in {UNIT_DIR}/{glob}; do [ -e "$f" ] && echo "${{f##*/}}"; done
  systemctl list-units --all --plain --no-legend --full {glob} | awk '{{print $1}}'; }} | sort -u |
while read -r u; do
  printf 'unit\\t%s\\t%s\\t%s\\n' "$u" "$(systemctl show -p ActiveState --value -- "$u")" \\
    "$(systemctl show -p Description --value -- "$u")"
done
if command -v docker >/dev/null 2>&1; then
  err=$(mktemp)
  names=$({{ docker ps -a --filter {label} --format '{{{{.Names}}}}' &&
            docker ps -a --filter {name} --format '{{{{.Names}}}}'; }} 2>"$err") ||
    printf 'docker-error\\t%s\\n' "$(head -c 300 "$err" | tr '\\n' ' ')"
  rm -f "$err"
  for c in $(printf '%s\\n' $names | sort -u); do
    printf 'container\\t%s\\t%s\\n' "$c" "$(docker inspect -f {fmt_rank} -- "$c" 2>/dev/null)"
  done
fi
if [ -d {cdir} ]; then printf 'dir\\t%s\\n' {cdir}; fi
true
"""


def parse_footprint(cluster: str, prefix: str, result: CommandResult) -> Footprint:
    prefix = re.escape(prefix)
    unit_re = re.compile(rf"^{prefix}(\d+)\.service$")
    ctr_re = re.compile(rf"^{prefix}(\d+)$")
    units: list[Item] = []
    containers: list[Item] = []
    cdir: str | None = None
    docker_error = ""
    for line in result.stdout.splitlines():
        f = line.split("\t")
        if f[0] == "unit" and len(f) >= 3:
            m = unit_re.match(f[1])
            if m:
                rank = _DESC_RANK.search(f[3]) if len(f) > 3 else None
                units.append(Item("unit", f[1], int(m.group(1)), int(rank.group(1)) if rank else None,
                                  f[2] or "unknown"))
        elif f[0] == "container" and len(f) >= 3:
            m = ctr_re.match(f[1])
            owner = f[4] if len(f) > 4 else ""
            if (owner == cluster or (m and not owner)) and m:
                rank_label = f[3] if len(f) > 3 else ""
                containers.append(Item("container", f[1], int(m.group(1)),
                                       int(rank_label) if rank_label.isdigit() else None, f[2] or "unknown"))
        elif f[0] == "dir" and len(f) >= 2:
            cdir = f[1]
        elif f[0] == "docker-error":
            docker_error = "\t".join(f[1:]).strip()
    return Footprint(tuple(units), tuple(containers), cdir, docker_error)
