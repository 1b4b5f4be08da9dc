"""The SGLang runtime the inventory pins: a docker image (pulled, mirrored or loaded from an
archive) or a Python venv with ``sglang==<version>``; and the parser-check snippet."""

from __future__ import annotations

import hashlib
import json
import shlex
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from glm5cluster.commands import Command, CommandResult, Shell, Upload
from glm5cluster.facts.base import Fact
from glm5cluster.model.catalog import GpuProfile, gpu_profile
from glm5cluster.model.inventory import Inventory
from glm5cluster.runtime import for_inventory
from glm5cluster.tasks.base import Change, HostContext, NoOp, Outcome, Params, Skip, Task
from glm5cluster.tasks.weights import pip_index_args

ARCHIVE_DEST = "/var/tmp/glm5cluster-sglang-image.tar"

# Runs with the installed SGLang's python: reads the argv as JSON on stdin, parses it with the
# installed ServerArgs parser, prints one JSON line (version, unknown flags, parser error).
FLAGCHECK_SNIPPET = r"""
import argparse, contextlib, io, json, sys
argv = json.load(sys.stdin)
out = {"version": "?", "unknown": [], "error": ""}
try:
    import importlib.metadata as md
    out["version"] = md.version("sglang")
except Exception:
    pass
from sglang.srt.server_args import ServerArgs
if out["version"] == "?":
    import sglang
    out["version"] = str(getattr(sglang, "__version__", "?"))
p = argparse.ArgumentParser(prog="sglang.launch_server", allow_abbrev=False)
ServerArgs.add_cli_args(p)
known = {o for a in p._actions for o in a.option_strings}
out["unknown"] = [a.split("=", 1)[0] for a in argv if a.startswith("--") and a.split("=", 1)[0] not in known]
err = io.StringIO()
try:
    with contextlib.redirect_stderr(err):
        p.parse_args(argv)
except SystemExit as e:
    if e.code:
        out["error"] = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "parse failed"
# Then SGLang's own post-parse validation (ServerArgs.check_server_args), where it runs without
# a GPU or the model: its assertions are refusals; any other exception (a field only resolution
# fills in, a CUDA probe) means the check could not run to the end on this host.
if not out["error"] and not out["unknown"]:
    out["postparse"] = "not available"
    try:
        sa = ServerArgs.from_cli_args(p.parse_args(argv))
        check = getattr(sa, "check_server_args", None)
        if check is not None:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                check()
            out["postparse"] = "ok"
    except (AssertionError, ValueError) as e:
        out["error"] = "post-parse check (ServerArgs.check_server_args): " + (str(e).splitlines() or [type(e).__name__])[0]
        out["postparse"] = "refused"
    except BaseException as e:
        out["postparse"] = "incomplete (" + type(e).__name__ + ")"
print(json.dumps(out))
"""


def node_image(ctx: HostContext) -> str | None:
    """The image this node's runtime runs (None: the runtime runs no image). The rule is the
    runtime's (``runtime.container.ContainerRuntime.image``), so the image pulled here is the
    image the launch runs."""
    return for_inventory(ctx.inv).image(gpu_profile(ctx.node.gpu_kind))


def pull_ref(image: str, mirror: str | None) -> str:
    return f"{mirror.rstrip('/')}/{image}" if mirror else image


@dataclass(frozen=True)
class ImageState:
    present: bool
    image_id: str | None
    digests: tuple[str, ...]


class ImageFact(Fact[ImageState]):
    name = "docker_image"

    def __init__(self, image: str) -> None:
        self.image = image

    def command(self) -> Shell:
        return Shell.cmd("docker", "image", "inspect", "--format", "{{.Id}} {{json .RepoDigests}}", self.image,
                         sudo=True, description=f"inspect image {self.image}")

    def parse(self, result: CommandResult) -> ImageState:
        if not result.ok or not result.stdout.strip():
            return ImageState(False, None, ())
        ident, _, rest = result.stdout.strip().partition(" ")
        try:
            digests = tuple(json.loads(rest) or ())
        except ValueError:
            digests = ()
        return ImageState(True, ident, digests)


def archive_image_id(path: str) -> str | None:
    """The image ID (config digest) inside a ``docker save`` archive, read on the controller."""
    with tarfile.open(path) as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            return None
        manifest = json.load(member)
    config = manifest[0]["Config"]  # "blobs/sha256/<hex>" (OCI layout) or "<hex>.json"
    hexpart = config.rsplit("/", 1)[-1].removesuffix(".json")
    return f"sha256:{hexpart}"


class RuntimeParams(Params):
    pass


def digest_stamp(cluster: str) -> str:
    """Where the node records which image (ID and registry digests) the tag resolved to."""
    return f"/etc/glm5cluster/{cluster}/image.digest"


def record_digest(image: str, cluster: str) -> Shell:
    """After a pull or load: resolve the tag to its image ID and registry digests and record
    them (``<id> <json repo digests>``), so what runs is known even if the tag moves later."""
    path = shlex.quote(digest_stamp(cluster))
    fmt = shlex.quote("{{.Id}} {{json .RepoDigests}}")
    script = (f"install -d -m 0755 {shlex.quote(digest_stamp(cluster).rsplit('/', 1)[0])} && "
              f"docker image inspect --format {fmt} {shlex.quote(image)} > {path}.tmp && mv {path}.tmp {path} && cat {path}")
    return Shell.sh(script, sudo=True, description=f"record the digest {image} resolved to")


class SglangImage(Task[RuntimeParams]):
    """docker runtime: the image present with the same digest (pull, mirror pull + tag, or load)."""

    name = "sglang.image"
    Params = RuntimeParams

    def facts(self, params: RuntimeParams, ctx: HostContext) -> Mapping[str, Fact[Any]]:
        image = node_image(ctx)
        return {"image": ImageFact(image)} if image else {}

    def plan(self, params: RuntimeParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        inv = ctx.inv
        image = node_image(ctx)
        if image is None:
            return Skip(f"serving.runtime is {inv.serving.runtime.value}: no image")
        st: ImageState = facts["image"]
        archive = inv.serving.image_archive
        if archive:
            want = archive_image_id(archive)
            if st.present and st.image_id == want:
                return NoOp(f"{image} present, same image ID as {archive} ({(want or '')[:19]})")
            data = open(archive, "rb").read()  # noqa: SIM115 - the archive travels as one upload
            return Change([
                Upload(ARCHIVE_DEST, data, 0o600, sudo=True, description=f"copy {archive} ({len(data) >> 20} MiB)"),
                Shell.cmd("docker", "load", "-i", ARCHIVE_DEST, sudo=True, timeout=3600, description=f"docker load {image}"),
                Shell.cmd("rm", "-f", ARCHIVE_DEST, sudo=True),
                record_digest(image, inv.cluster.name),
            ], f"load {image} from {archive} (sha256 {hashlib.sha256(data).hexdigest()[:12]})")
        pinned = image.split("@", 1)[1] if "@" in image else None
        if st.present and (pinned is None or any(d.endswith(pinned) for d in st.digests)):
            return NoOp(f"{image} present ({', '.join(st.digests) or st.image_id})")
        ref = pull_ref(image, inv.stack.registry_mirror)
        cmds: list[Command] = [Shell.cmd("docker", "pull", ref, sudo=True, timeout=3600, description=f"docker pull {ref}")]
        if ref != image:
            cmds.append(Shell.cmd("docker", "tag", ref, image, sudo=True, description=f"tag {ref} as {image}"))
        cmds.append(record_digest(image, inv.cluster.name))
        return Change(cmds, f"pull {image}" + (f" from mirror {inv.stack.registry_mirror}" if ref != image else ""))


@dataclass(frozen=True)
class VenvState:
    python: bool
    sglang: str | None
    extras: tuple[str, ...] | None = None  # serving.extra_packages the last install installed (None: none recorded)


EXTRAS_STAMP = "glm5cluster-extra-packages.json"  # in the venv: the extra requirements installed, as JSON


def extras_stamp(venv: str) -> str:
    return f"{venv}/{EXTRAS_STAMP}"


class VenvFact(Fact[VenvState]):
    name = "sglang_venv"

    def __init__(self, venv: str) -> None:
        self.venv = venv

    def command(self) -> Shell:
        py = shlex.quote(f"{self.venv}/bin/python")
        stamp = shlex.quote(extras_stamp(self.venv))
        return Shell.sh(f"test -x {py} || exit 3; {py} -c 'import importlib.metadata as m; print(m.version(\"sglang\"))' "
                        f"&& {{ printf 'extras '; cat {stamp} 2>/dev/null || echo none; }}",
                        description=f"sglang version in {self.venv}")

    def parse(self, result: CommandResult) -> VenvState:
        if result.exit_code == 3:
            return VenvState(False, None)
        lines = result.stdout.strip().splitlines() if result.ok else []
        extras: tuple[str, ...] | None = None
        if lines and lines[-1].startswith("extras "):
            try:
                doc = json.loads(lines.pop()[7:])
                extras = tuple(str(x) for x in doc) if isinstance(doc, list) else None
            except ValueError:
                extras = None
        return VenvState(True, lines[-1] if lines else None, extras)


class SglangVenv(Task[RuntimeParams]):
    """venv runtime: ``python3 -m venv`` + ``pip install sglang==<version>`` and the inventory's
    ``serving.extra_packages`` (PyPI or the index); the extras installed are recorded in the venv,
    so a converged re-run changes nothing."""

    name = "sglang.venv"
    Params = RuntimeParams

    def facts(self, params: RuntimeParams, ctx: HostContext) -> Mapping[str, Fact[Any]]:
        venv = for_inventory(ctx.inv).venv()
        return {"venv": VenvFact(venv)} if venv else {}

    def plan(self, params: RuntimeParams, ctx: HostContext, facts: Mapping[str, Any]) -> Outcome:
        serving = ctx.inv.serving
        if for_inventory(ctx.inv).venv() is None:
            return Skip(f"serving.runtime is {serving.runtime.value}: no venv")
        st: VenvState = facts["venv"]
        extras = tuple(serving.extra_packages)
        extras_ok = not extras or st.extras == extras
        if st.sglang == serving.sglang_version and extras_ok:
            more = f" with {', '.join(extras)}" if extras else ""
            return NoOp(f"sglang {st.sglang} installed in {serving.venv_path}{more}")
        cmds: list[Command] = []
        if not st.python:
            cmds.append(Shell.cmd("python3", "-m", "venv", serving.venv_path, sudo=True, description=f"create {serving.venv_path}"))
        cmds.append(Shell.cmd(f"{serving.venv_path}/bin/pip", "install", "--disable-pip-version-check", "-q",
                              *pip_index_args(serving.package_index), f"sglang=={serving.sglang_version}", *extras,
                              sudo=True, timeout=3600, description=f"pip install sglang=={serving.sglang_version}"
                              + "".join(f" {e}" for e in extras)))
        if extras:
            stamp = extras_stamp(serving.venv_path)
            cmds.append(Upload(stamp, (json.dumps(list(extras)) + "\n").encode(), 0o644, sudo=True,
                               description="record the extra packages installed"))
        was = f" (was {st.sglang})" if st.sglang else ""
        more = f" with {', '.join(extras)}" if extras else ""
        return Change(cmds, f"install sglang {serving.sglang_version}{more} into {serving.venv_path}{was}")


def flagcheck_command(inventory: Inventory, gpu: GpuProfile, argv: list[str]) -> Shell:
    """The command that parses ``argv`` with the installed SGLang (argv travels on stdin), run
    by the inventory's runtime (the venv's python, or the image's)."""
    rt = for_inventory(inventory)
    run = rt.python_once(rt.image(gpu))
    return Shell.cmd(*run, "-c", FLAGCHECK_SNIPPET, sudo=True, stdin=json.dumps(argv), timeout=600,
                     description="check launch flags (installed parser)")


def flagcheck_verdict(result: CommandResult, host: str) -> tuple[bool, str, str]:
    """(ok, message, version) from the snippet's output."""
    try:
        doc = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False, f"could not run the installed SGLang parser on {host}: {result.tail(5)}", "?"
    ver = str(doc.get("version", "?"))
    if doc.get("unknown"):
        flags = ", ".join(doc["unknown"])
        return False, f"SGLang {ver} installed on {host} does not know {flags}", ver
    if doc.get("error"):
        return False, f"SGLang {ver} on {host} refuses the launch arguments: {doc['error']}", ver
    post = doc.get("postparse")
    note = f"; its post-parse check: {post}" if post else ""
    return True, f"every launch flag accepted by SGLang {ver}{note}", ver
