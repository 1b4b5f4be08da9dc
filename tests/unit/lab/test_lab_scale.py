"""Pure parts of a large lab: 64 hosts fit one subnet, the boot deadline grows with the lab,
the journal is capped, and --docker-on-demand reaches every host's plan."""

from __future__ import annotations

from glm5cluster.lab import hosts as H
from glm5cluster.lab.addresses import MAX_HOSTS, host_address
from glm5cluster.lab.files import LabSettings
from glm5cluster.lab.manager import READY_TIMEOUT, plans, ready_timeout


def test_sixty_four_hosts_fit_a_slash_24_from_dot_11() -> None:
    s = LabSettings("k1", MAX_HOSTS, "H200", 8, "172.28.150.0/24")
    addrs = [p.address for p in plans(s)]
    assert len(set(addrs)) == 64 and addrs[0] == "172.28.150.11" and addrs[-1] == "172.28.150.74"
    assert host_address("172.28.150.0/24", 64) == "172.28.150.74"


def test_boot_deadline_grows_with_the_lab() -> None:
    assert ready_timeout(1) == ready_timeout(4) == READY_TIMEOUT
    assert ready_timeout(16) > READY_TIMEOUT
    assert ready_timeout(64) >= 300  # 64 hosts boot in minutes on 2 cores, not in 120 s


def test_journal_is_capped_on_every_host() -> None:
    p = plans(LabSettings("k1", 2, "H200", 8, "172.28.150.0/24"))[0]
    files = {path: data for path, data, _, _ in H.host_files(p, "ssh-ed25519 AAAA k", {})}
    conf = files["etc/systemd/journald.conf.d/glm5lab.conf"].decode()
    assert "RuntimeMaxUse=16M" in conf and conf.startswith("[Journal]")


def test_docker_on_demand_reaches_every_plan_and_defaults_off() -> None:
    assert not any(p.docker_on_demand for p in plans(LabSettings("k1", 3, "H200", 8, "172.28.150.0/24")))
    on = plans(LabSettings("k1", 3, "H200", 8, "172.28.150.0/24", docker_on_demand=True))
    assert all(p.docker_on_demand for p in on)
    # first boot only: a later `systemctl enable docker` must survive a reboot (container restart)
    assert H.ON_DEMAND_INIT.startswith("[ -e /etc/glm5lab/docker-on-demand ] ||")
    assert H.ON_DEMAND_INIT.endswith("exec /sbin/init")
