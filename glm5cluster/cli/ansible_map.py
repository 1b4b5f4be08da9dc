"""Ansible connection variables that have a glm5cluster ``ssh`` counterpart beyond the plain ones
(``inventory import --from-ansible``): the jump host and privilege escalation.

- Jump host: ``ansible_ssh_common_args`` / ``ansible_ssh_extra_args`` with ``-J [user@]host[:port]``,
  ``-o ProxyJump=...`` (or ``-o 'ProxyJump ...'``), or the classic
  ``-o ProxyCommand="ssh -W %h:%p [-q] [-p PORT] [-l USER] [user@]host"`` -> ``ssh.jump_host``.
  A chain of jumps (``a,b``) or another ProxyCommand is refused with a hint (one hop only).
- Become: ``ansible_become`` with ``ansible_become_method`` sudo (the default) and
  ``ansible_become_user`` root (the default) -> ``ssh.sudo: true`` for a non-root login (glm5cluster
  runs privileged commands through ``sudo -n``); as root nothing is needed. Another method (su,
  doas...) or target user is refused: glm5cluster only escalates with ``sudo -n`` to root.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from glm5cluster.errors import InputError

_TRUE = {"1", "true", "yes", "on", "y", "t"}


def truthy(value: Any) -> bool:
    """Ansible's boolean(): true, "yes", "on", "1"..."""
    return value is True or (isinstance(value, int | float) and value == 1) or str(value).strip().lower() in _TRUE


def _one_hop(host: str, value: str, source: str) -> str:
    if "," in value:
        raise InputError(f"Ansible host {host!r}: {source} jumps through several hosts ({value})",
                         hint="glm5cluster takes one jump host (ssh.jump_host); for a chain, describe it in "
                              "an ssh config file (ProxyJump) and point ssh.config_file at it")
    return value.removeprefix("ssh://")


def _proxy_command(host: str, command: str) -> str:
    """``ssh -W %h:%p [opts] [user@]bastion`` as ``[user@]bastion[:port]``."""
    words = shlex.split(command)
    if not words or words[0].rsplit("/", 1)[-1] != "ssh" or "-W" not in words:
        raise InputError(f"Ansible host {host!r}: ProxyCommand {command!r} is not an `ssh -W %h:%p` hop",
                         hint="set ssh.jump_host by hand, or put the ProxyCommand in an ssh config file "
                              "and point ssh.config_file at it")
    user = port = dest = None
    i = 1
    while i < len(words):
        w = words[i]
        if w in ("-W", "-p", "-l", "-i", "-o", "-F", "-J"):
            arg = words[i + 1] if i + 1 < len(words) else ""
            if w == "-p":
                port = arg
            elif w == "-l":
                user = arg
            elif w == "-J":
                raise InputError(f"Ansible host {host!r}: ProxyCommand {command!r} jumps twice",
                                 hint="describe the chain in an ssh config file and point ssh.config_file at it")
            i += 2
            continue
        if not w.startswith("-") and dest is None:
            dest = w
        i += 1
    if not dest:
        raise InputError(f"Ansible host {host!r}: ProxyCommand {command!r} names no jump host",
                         hint="set ssh.jump_host by hand")
    if user and "@" not in dest:
        dest = f"{user}@{dest}"
    return f"{dest}:{port}" if port and port != "22" else dest


def jump_host(host: str, hostvars: Mapping[str, Any]) -> str | None:
    """The jump host the host's ssh arguments name, if any."""
    for var in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        args = hostvars.get(var)
        if not args:
            continue
        words = shlex.split(str(args))
        i = 0
        while i < len(words):
            w = words[i]
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if w == "-J" or w.startswith("-J"):
                return _one_hop(host, nxt if w == "-J" else w[2:], var)
            if w == "-o" or w.startswith("-o"):
                opt = nxt if w == "-o" else w[2:]
                key, _, value = opt.replace("=", " ", 1).partition(" ")
                if key.lower() == "proxyjump" and value.strip().lower() != "none":
                    return _one_hop(host, value.strip(), var)
                if key.lower() == "proxycommand" and value.strip().lower() != "none":
                    return _proxy_command(host, value.strip())
                i += 2 if w == "-o" else 1
                continue
            i += 1
    return None


def become(host: str, hostvars: Mapping[str, Any], user: str | None, notes: list[str]) -> bool | None:
    """``ssh.sudo`` for the host (None: leave the default), from its become variables."""
    if not truthy(hostvars.get("ansible_become", False)):
        if user and user != "root":
            notes.append(f"{host}: Ansible does not become root here, but glm5cluster needs root: it runs "
                         f"privileged commands through `sudo -n` as {user} (NOPASSWD sudo needed)")
        return None
    method = str(hostvars.get("ansible_become_method") or "sudo")
    target = str(hostvars.get("ansible_become_user") or "root")
    if method != "sudo":
        raise InputError(f"Ansible host {host!r}: ansible_become_method is {method}",
                         hint="glm5cluster escalates only with `sudo -n`: give the user NOPASSWD sudo, "
                              "or log in as root (ansible_user=root)")
    if target != "root":
        raise InputError(f"Ansible host {host!r}: ansible_become_user is {target}",
                         hint="glm5cluster needs root on the hosts (sudo -n to root, or ansible_user=root)")
    if any(hostvars.get(k) for k in ("ansible_become_password", "ansible_become_pass", "ansible_sudo_pass")):
        notes.append(f"{host}: a become password is set in Ansible; glm5cluster runs `sudo -n` and "
                     "never takes one: the user needs NOPASSWD sudo (the password is not imported)")
    if not user:
        notes.append(f"{host}: no ansible_user: Ansible logs in as your local user, glm5cluster as root; "
                     "set ssh.user if root may not log in")
        return None
    return True if user != "root" else None
