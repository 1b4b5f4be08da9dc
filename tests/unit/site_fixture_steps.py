"""Site steps used by tests/unit/test_site_steps.py (loaded by path, like a user's file)."""

from glm5cluster.engine.userstep import changed, failed, ok


def marker(c, check, path="/etc/marker", text="x"):
    if c.run(f"cat {path}", warn=True).stdout == text:
        return ok(f"{path} present")
    if check:
        return changed(f"would write {path}")
    c.sudo(f"write {path} {text}")
    return changed(f"wrote {path}")


def refuse(c, check):
    return failed("not on this host", hint="pick another")


def boom(c, check):
    c.run("false")
    return ok("never")


def raises(c, check):
    raise ValueError("bad site data")


def returns_junk(c, check):
    return 42
