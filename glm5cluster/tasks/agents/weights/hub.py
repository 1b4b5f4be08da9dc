"""From the hub: ``list`` (revision -> commit, files with sizes and LFS sha256) and ``fetch``
(resumed, stall-watched, retried, verified downloads; redirects never carry the token off the
hub's origin nor down to http)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .files import (
    CHUNK,
    Progress,
    check_paths,
    digest_ok,
    hasher_for,
    log,
    place,
    qname,
    resume_partial,
    sdir,
)


def cmd_list(req: dict[str, Any]) -> dict[str, Any]:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=req.get("endpoint") or None)
    info = api.model_info(req["repo"], revision=req["revision"], files_metadata=True)
    files = []
    for s in info.siblings or []:
        lfs = s.lfs
        sha = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
        size = s.size if s.size is not None else (getattr(lfs, "size", None) if lfs else None)
        files.append({"path": s.rfilename, "size": int(size or 0), "sha256": sha, "blob_id": s.blob_id})
    check_paths(Path("/nonexistent-root"), files)
    return {"commit": info.sha, "files": sorted(files, key=lambda f: f["path"])}



class RedirectRefused(RuntimeError):
    """The hub redirected somewhere the token or the bytes must not go."""



class HubRedirects(urllib.request.HTTPRedirectHandler):
    """Follow the hub's redirects (to its CDN), but never send the token to any origin other
    than the hub endpoint's, never go from https down to http, never leave http(s)."""

    def __init__(self, origin: str) -> None:
        o = urlsplit(origin)
        self.origin = (o.scheme, o.netloc.lower())

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        old, new = urlsplit(req.full_url), urlsplit(newurl)
        if new.scheme not in ("http", "https"):
            raise RedirectRefused(f"the hub redirected to a {new.scheme or 'relative'} URL: refused")
        if old.scheme == "https" and new.scheme == "http":
            raise RedirectRefused(f"the hub redirected from https to http ({new.netloc}): refused")
        out = super().redirect_request(req, fp, code, msg, headers, newurl)
        if out is not None and (new.scheme, new.netloc.lower()) != self.origin:
            out.remove_header("Authorization")  # the token is for the hub endpoint only
        return out



def hub_opener(url: str) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(HubRedirects(url))



def hub_download(root: Path, req: dict[str, Any], f: dict[str, Any], prog: Progress) -> None:
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    url = hf_hub_url(req["repo"], f["path"], revision=req["commit"], endpoint=req.get("endpoint") or None)
    headers = build_hf_headers()
    part = sdir(root, "partial") / (qname(f["path"]) + ".part")
    size = int(f["size"])
    last_err = ""
    for attempt in range(int(req.get("retries", 5)) + 1):
        have, h = resume_partial(part, f, size)
        prog.set(f["path"], have)
        try:
            if have < size:
                hdrs = dict(headers)
                if have:
                    hdrs["Range"] = f"bytes={have}-"
                with hub_opener(url).open(urllib.request.Request(url, headers=hdrs),  # noqa: S310
                                          timeout=float(req.get("stall_timeout", 120))) as resp:
                    mode = "ab"
                    if have and resp.status == 200:  # the server ignored Range: start over
                        have, mode, h = 0, "wb", hasher_for(f)
                    with part.open(mode) as out:
                        while chunk := resp.read(CHUNK):
                            out.write(chunk)
                            h.update(chunk)
                            have += len(chunk)
                            prog.set(f["path"], have)
            got = part.stat().st_size
            if got != size:
                last_err = f"{f['path']}: connection ended at {got} of {size} bytes"
            elif not digest_ok(f, str(h.hexdigest())):
                last_err = f"{f['path']}: checksum mismatch, fetching again"
                part.unlink()
                prog.set(f["path"], 0)
            else:
                place(root, part, f)
                prog.set(f["path"], size, file_done=True)
                return
        except urllib.error.HTTPError as e:
            if e.code in (401, 403, 404):
                raise RuntimeError(f"{f['path']}: hub answered {e.code} {e.reason}") from None
            last_err = f"{f['path']}: hub answered {e.code}"
        except (OSError, TimeoutError) as e:  # includes URLError, resets, stalls (socket timeout)
            last_err = f"{f['path']}: {type(e).__name__}: {e}"
        log(f"retry {attempt + 1}: {last_err}")
        time.sleep(min(2 ** attempt, 30) * 0.5)
    raise RuntimeError(f"gave up after {req.get('retries', 5)} retries: {last_err}")
