"""Sample site steps for playbooks/site-example.yaml (your own steps go in a file like this).

Each function gets ``c`` (a fabric Connection bound to one host, connected by glm5cluster with the
inventory's strict host keys, jump host and timeouts; ``c.sudo`` runs ``sudo -n``), ``check``
(True under --check and during the plan pass: change nothing, say what would change) and the
step's params. Return ok(msg), changed(msg) or failed(msg, hint). Be idempotent: a second run
must report ok.
"""

from __future__ import annotations

import shlex

from glm5cluster.engine.userstep import Outcome, changed, failed, ok


def sysctl(c, check: bool, settings: dict[str, str], file: str = "/etc/sysctl.d/90-site.conf") -> Outcome:
    """Persist kernel settings in a sysctl.d file and apply them."""
    want = "".join(f"{k} = {v}\n" for k, v in sorted(settings.items()))
    have = c.run(f"cat {shlex.quote(file)} 2>/dev/null || true").stdout
    if have == want:
        return ok(f"{file} up to date")
    if check:
        return changed(f"would write {len(settings)} setting(s) to {file}")
    c.sudo(f"printf %s {shlex.quote(want)} > {shlex.quote(file)} && chmod 0644 {shlex.quote(file)}")
    c.sudo(f"sysctl -q -p {shlex.quote(file)} || true")
    return changed(f"wrote {len(settings)} setting(s) to {file}")


def mount(c, check: bool, device: str, path: str, fstype: str = "ext4",
          options: str = "defaults,nofail") -> Outcome:
    """Mount a filesystem and keep it in /etc/fstab."""
    if c.run(f"mountpoint -q {shlex.quote(path)}", warn=True).ok:
        return ok(f"{path} is mounted")
    if not c.run(f"test -b {shlex.quote(device)}", warn=True).ok:
        return failed(f"{device} is not a block device on this host",
                      hint="set the device in the step's params (lsblk lists them)")
    if check:
        return changed(f"would mount {device} on {path}")
    line = f"{device} {path} {fstype} {options} 0 2"
    c.sudo(f"mkdir -p {shlex.quote(path)} && (grep -qsF {shlex.quote(line)} /etc/fstab || "
           f"echo {shlex.quote(line)} >> /etc/fstab) && mount {shlex.quote(path)}")
    return changed(f"mounted {device} on {path}")


def marker(c, check: bool, path: str = "/etc/glm5cluster/site-marker", text: str = "site") -> Outcome:
    """A file with fixed content: the smallest possible idempotent step (used by the lab test)."""
    if c.run(f"cat {shlex.quote(path)} 2>/dev/null || true").stdout == text + "\n":
        return ok(f"{path} present")
    if check:
        return changed(f"would write {path}")
    c.sudo(f"mkdir -p $(dirname {shlex.quote(path)}) && echo {shlex.quote(text)} > {shlex.quote(path)}")
    return changed(f"wrote {path}")
