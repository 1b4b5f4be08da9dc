"""One probe of a host's GPU stack: OS, kernel, packages, loaded driver, services, devices.

One SSH round trip gathers every section the GPU-stack tasks plan from; ``parse`` is pure.
The script prints ``@@<section> <rc>`` before each section's output so a missing tool (no
``nvidia-smi`` on a bare host) is a value, not an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from glm5cluster.commands import CommandResult, Shell
from glm5cluster.facts.base import Fact

_PKG_GLOBS = (
    "nvidia-*", "cuda-*", "libnvidia-*", "linux-headers-*", "docker*", "containerd*",
    "amdgpu*", "rocm*", "nvlsm", "infiniband-diags", "kernel-devel*", "kmod-nvidia*",
    "python3-dnf-plugin-versionlock", "moby-*",
)

_SECTIONS: tuple[tuple[str, str], ...] = (
    ("os", ". /etc/os-release; printf 'id=%s\\nversion=%s\\nlike=%s\\ncodename=%s\\n' "
           "\"$ID\" \"$VERSION_ID\" \"$ID_LIKE\" \"${VERSION_CODENAME:-}\"; "
           "printf 'kernel=%s\\narch=%s\\n' \"$(uname -r)\" \"$(uname -m)\""),
    ("dpkg", "dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n' "
             + " ".join(f"'{g}'" for g in _PKG_GLOBS)),
    ("held", "apt-mark showhold"),
    ("rpm", "rpm -qa --qf '%{NAME} %{VERSION}-%{RELEASE} ii\\n'"),
    ("versionlock", "dnf -q versionlock list"),
    ("apt_sources", "grep -rhsE '^(deb |Components:|URIs:)' /etc/apt/sources.list /etc/apt/sources.list.d/"),
    ("yum_repos", "grep -rhs '^\\[' /etc/yum.repos.d/"),
    ("proc_version", "cat /proc/driver/nvidia/version"),
    ("modinfo", "modinfo -F version nvidia"),
    ("smi_version", "nvidia-smi --version"),
    ("smi_gpus", "nvidia-smi --query-gpu=index,name,memory.total,driver_version,persistence_mode "
                 "--format=csv,noheader,nounits"),
    ("smi_health", "nvidia-smi --query-gpu=index,ecc.errors.uncorrected.volatile.total,"
                   "remapped_rows.pending,remapped_rows.failure --format=csv,noheader,nounits"),
    ("reboot_required", "test -e /var/run/reboot-required || test -e /run/reboot-required"),
    ("nvswitch", "ls /proc/driver/nvidia-nvswitch/devices | head -n 1 | grep ."),
    ("sw_mng", "grep -ls SW_MNG /sys/class/infiniband/*/device/vpd | head -n 1 | grep ."),
    ("services", "for u in nvidia-fabricmanager nvidia-persistenced docker; do "
                 "printf '%s %s %s\\n' \"$u\" \"$(systemctl is-active $u 2>/dev/null)\" "
                 "\"$(systemctl is-enabled $u 2>/dev/null)\"; done"),
    ("docker", "command -v docker"),
    ("docker_runtime", "grep -qs '\"nvidia\"' /etc/docker/daemon.json"),
    ("daemon_json", "cat /etc/docker/daemon.json"),
    ("nvidia_ctk", "command -v nvidia-ctk"),
    ("amd", "test -e /dev/kfd && echo kfd; command -v rocminfo >/dev/null && "
            "rocminfo 2>/dev/null | grep -c 'Marketing Name:.*Instinct'"),
    ("dkms", "dkms status"),
    ("module_tree", "test -d \"/lib/modules/$(uname -r)\""),
    ("groups", "id -nG \"${SUDO_USER:-$(id -un)}\""),
)


def probe_script() -> str:
    parts = []
    for name, body in _SECTIONS:
        parts.append(f"o=$( ( {body} ) 2>&1 ); rc=$?; echo \"@@{name} $rc\"; [ -n \"$o\" ] && printf '%s\\n' \"$o\"")
    return "\n".join(parts) + "\nexit 0\n"


@dataclass(frozen=True)
class Section:
    rc: int
    text: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def lines(self) -> list[str]:
        return [ln for ln in self.text.splitlines() if ln.strip()]


@dataclass(frozen=True)
class GpuRow:
    index: int
    name: str
    memory_mib: int
    driver: str
    persistence: bool


@dataclass(frozen=True)
class StackState:
    """Everything the GPU-stack tasks read about a host."""

    os_id: str = ""
    os_version: str = ""
    os_like: str = ""
    codename: str = ""
    kernel: str = ""
    arch: str = "x86_64"
    packages: dict[str, str] = field(default_factory=dict)  # installed name -> version
    held: frozenset[str] = frozenset()
    apt_sources: tuple[str, ...] = ()
    yum_repos: tuple[str, ...] = ()
    loaded_driver: str | None = None  # /proc/driver/nvidia/version
    loaded_open: bool | None = None
    module_version: str | None = None  # modinfo -F version nvidia (on disk)
    smi_ok: bool = False
    smi_mismatch: bool = False
    smi_driver: str | None = None
    gpus: tuple[GpuRow, ...] = ()
    health_problems: tuple[str, ...] = ()
    reboot_flag: bool = False
    nvswitch: bool = False
    sw_mng: bool = False
    services: dict[str, tuple[str, str]] = field(default_factory=dict)  # unit -> (active, enabled)
    docker: bool = False
    docker_nvidia_runtime: bool = False
    nvidia_ctk: bool = False
    amd_kfd: bool = False
    amd_agents: int = 0
    dkms: tuple[str, ...] = ()
    groups: frozenset[str] = frozenset()
    module_tree: bool = True  # /lib/modules/<running kernel> exists (DKMS can build for it)
    daemon_json: str | None = None  # /etc/docker/daemon.json as read (None: absent)

    @property
    def family(self) -> str:
        """``debian`` (Ubuntu/Debian, apt) or ``rhel`` (RHEL/Rocky/Alma 9, dnf) or ``unknown``."""
        ids = {self.os_id, *self.os_like.split()}
        if ids & {"debian", "ubuntu"}:
            return "debian"
        if ids & {"rhel", "rocky", "almalinux", "centos", "fedora"}:
            return "rhel"
        return "unknown"

    def active(self, unit: str) -> bool:
        return self.services.get(unit, ("", ""))[0] == "active"

    def enabled(self, unit: str) -> bool:
        return self.services.get(unit, ("", ""))[1] == "enabled"

    def has(self, package: str) -> bool:
        return package in self.packages


def split_sections(text: str) -> dict[str, Section]:
    out: dict[str, Section] = {}
    name: str | None = None
    rc = 0
    buf: list[str] = []
    for line in text.splitlines():
        m = re.fullmatch(r"@@(\w+) (\d+)", line)
        if m:
            if name is not None:
                out[name] = Section(rc, "\n".join(buf))
            name, rc, buf = m.group(1), int(m.group(2)), []
        elif name is not None:
            buf.append(line)
    if name is not None:
        out[name] = Section(rc, "\n".join(buf))
    return out


_VER_RE = re.compile(r"\b(\d{3}\.\d+(?:\.\d+)?)\b")


def parse_stack(text: str) -> StackState:
    s = split_sections(text)
    empty = Section(1, "")
    kv: dict[str, str] = {}
    for ln in s.get("os", empty).lines():
        k, _, v = ln.partition("=")
        kv[k] = v.strip().strip('"')
    packages: dict[str, str] = {}
    for sec in ("dpkg", "rpm"):
        for ln in s.get(sec, empty).lines():
            parts = ln.split()
            if len(parts) >= 3 and parts[2][:1] in ("i", "h") and parts[2][1:2] == "i":
                packages[parts[0]] = parts[1]
    held = {ln.strip() for ln in s.get("held", empty).lines() if s.get("held", empty).ok}
    for ln in s.get("versionlock", empty).lines():
        m = re.match(r"^(?:\d+:)?([A-Za-z0-9_.+-]+?)-\d", ln.strip())
        if m and s.get("versionlock", empty).ok:
            held.add(m.group(1))
    pv = s.get("proc_version", empty)
    loaded = loaded_open = None
    if pv.ok and pv.text:
        first = pv.lines()[0] if pv.lines() else ""
        m = _VER_RE.search(first)
        loaded = m.group(1) if m else None
        loaded_open = "Open Kernel Module" in first
    mi = s.get("modinfo", empty)
    module_version = mi.lines()[0].strip() if mi.ok and mi.lines() else None
    sv = s.get("smi_version", empty)
    smi_driver = None
    for ln in sv.lines():
        if ln.upper().startswith("DRIVER VERSION"):
            smi_driver = ln.split(":", 1)[1].strip()
    gpus_sec = s.get("smi_gpus", empty)
    mismatch = "mismatch" in (sv.text + gpus_sec.text).lower()
    gpus: list[GpuRow] = []
    if gpus_sec.ok:
        for ln in gpus_sec.lines():
            cols = [c.strip() for c in ln.split(",")]
            if len(cols) >= 5 and cols[0].isdigit():
                mem = re.sub(r"[^0-9]", "", cols[2]) or "0"
                gpus.append(GpuRow(int(cols[0]), cols[1], int(mem), cols[3], cols[4].lower() == "enabled"))
    if smi_driver is None and gpus:
        smi_driver = gpus[0].driver
    problems: list[str] = []
    hs = s.get("smi_health", empty)
    if hs.ok:
        for ln in hs.lines():
            cols = [c.strip() for c in ln.split(",")]
            if len(cols) < 4 or not cols[0].isdigit():
                continue
            idx, ecc, pending, failure = cols[:4]
            if ecc.isdigit() and int(ecc) > 0:
                problems.append(f"GPU {idx}: {ecc} uncorrectable volatile ECC errors")
            if pending.lower() in ("yes", "1"):
                problems.append(f"GPU {idx}: row remapping pending (needs a GPU reset)")
            if failure.lower() in ("yes", "1"):
                problems.append(f"GPU {idx}: row remapping failure occurred")
    services: dict[str, tuple[str, str]] = {}
    for ln in s.get("services", empty).lines():
        parts = ln.split()
        if parts:
            services[parts[0]] = (parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else "")
    amd_lines = s.get("amd", empty).lines()
    agents = next((int(x) for x in amd_lines if x.strip().isdigit()), 0)
    gr = s.get("groups", empty)
    return StackState(
        os_id=kv.get("id", ""),
        os_version=kv.get("version", ""),
        os_like=kv.get("like", ""),
        codename=kv.get("codename", ""),
        kernel=kv.get("kernel", ""),
        arch=kv.get("arch", "x86_64") or "x86_64",
        packages=packages,
        held=frozenset(held),
        apt_sources=tuple(s.get("apt_sources", empty).lines()),
        yum_repos=tuple(s.get("yum_repos", empty).lines()),
        loaded_driver=loaded,
        loaded_open=loaded_open,
        module_version=module_version,
        smi_ok=gpus_sec.ok and bool(gpus),
        smi_mismatch=mismatch,
        smi_driver=smi_driver,
        gpus=tuple(gpus),
        health_problems=tuple(problems),
        reboot_flag=s.get("reboot_required", empty).ok,
        nvswitch=s.get("nvswitch", empty).ok,
        sw_mng=s.get("sw_mng", empty).ok,
        services=services,
        docker=s.get("docker", empty).ok,
        docker_nvidia_runtime=s.get("docker_runtime", empty).ok,
        nvidia_ctk=s.get("nvidia_ctk", empty).ok,
        amd_kfd="kfd" in amd_lines,
        amd_agents=agents,
        dkms=tuple(s.get("dkms", empty).lines()) if s.get("dkms", empty).ok else (),
        groups=frozenset(gr.text.split()) if gr.ok else frozenset(),
        module_tree=s.get("module_tree", Section(0, "")).ok,
        daemon_json=s["daemon_json"].text if "daemon_json" in s and s["daemon_json"].ok else None,
    )


class StackFact(Fact[StackState]):
    """The GPU-stack state of a host (see ``StackState``)."""

    name = "gpu_stack"

    def command(self) -> Shell:
        return Shell.sh(probe_script(), sudo=True, timeout=60, description="probe GPU stack")

    def parse(self, result: CommandResult) -> StackState:
        return parse_stack(result.stdout)
