"""python: site steps over real SSH (fabric on the engine's transport) against the engine
module's lab (same name and settings: reused, not a second lab): --check changes nothing, the
sudo-user host goes through `sudo -n`, a re-run changes nothing, an unknown host key is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Lab, MakeLab
from tests.e2e.test_engine import LAB_NAME, ROOT, SUBNET, cli, env, recap_lines  # noqa: F401

pytestmark = pytest.mark.lab

SITE = str(ROOT / "playbooks" / "site-example.yaml")
MARKER = "/etc/glm5cluster/site-marker"
SYSCTL = "/etc/sysctl.d/90-site.conf"


@pytest.fixture(scope="module")
def lab(make_lab: MakeLab) -> Lab:
    return make_lab(LAB_NAME, hosts=4, subnet=SUBNET, sudo_user_hosts=1)


def _clean(lab: Lab) -> None:
    for h in lab.hosts:
        lab.exec(h, f"rm -f {MARKER} {SYSCTL}")


def test_site_steps_check_apply_rerun(lab: Lab, env: dict[str, str]) -> None:  # noqa: F811
    _clean(lab)
    inv = str(lab.inventory)
    check = cli(env, "run", inv, SITE, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    recap = recap_lines(check.stdout)
    assert set(recap) == set(lab.hosts) and all("would-change=2" in r for r in recap.values()), check.stdout
    assert "would write /etc/glm5cluster/site-marker" in check.stdout
    for h in lab.hosts:
        assert lab.exec(h, f"test -e {MARKER} || test -e {SYSCTL}")[0] != 0  # --check wrote nothing

    first = cli(env, "run", inv, SITE, "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert all("changed=2" in r for r in recap_lines(first.stdout).values()), first.stdout
    for h in lab.hosts:  # node-4 is reached as glm5: c.sudo ran through sudo -n
        rc, out = lab.exec(h, f"cat {MARKER}; stat -c %U {MARKER}; cat {SYSCTL}")
        assert rc == 0 and out.splitlines()[:2] == ["rehearsal", "root"], out
        assert "net.core.rmem_max = 134217728" in out

    again = cli(env, "run", inv, SITE, "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert all("changed=0" in r for r in recap_lines(again.stdout).values()), again.stdout


def test_site_step_refuses_an_unknown_host_key(lab: Lab, env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    _clean(lab)
    known = tmp_path / "known_hosts"
    known.write_text("")
    data = yaml.safe_load(lab.inventory.read_text())
    data["ssh"]["known_hosts"] = str(known)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    # --check takes no run lock: the python step's own fabric connection meets the host first
    refused = cli(env, "run", str(inv), SITE, "--check", "--limit", "node-1")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "UNREACHABLE" in recap_lines(refused.stdout)["node-1"], refused.stdout
    assert "unknown" in refused.stdout and "SHA256:" in refused.stdout
    assert not known.read_text().strip()  # nothing was recorded
    assert lab.exec("node-1", f"test -e {MARKER}")[0] != 0
