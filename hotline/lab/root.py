"""The lab's Debian-unstable root: found in the cache or built once with mmdebstrap.

The root is keyed by a version stamp (suite, packages, options), built into a temporary
directory and renamed into place, under a lock, so a half-built root is never used. The mirror
comes from the host's own apt sources (``/etc/apt/sources.list`` and ``sources.list.d``); it is
never written into the repository.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("asterisk", "asterisk-modules", "asterisk-config", "sip-tester")
APT_OPTIONS = ('Acquire::Check-Valid-Until "false"',)
ROOT_FORMAT = "1"  # bump when the way a root is prepared changes
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


class LabError(Exception):
    """A lab step cannot go on; the message says what to do."""


def stamp(suite: str, packages: tuple[str, ...] = PACKAGES) -> str:
    text = "|".join([ROOT_FORMAT, suite, *sorted(packages), *APT_OPTIONS, "variant=apt"])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _deb822_uris(text: str) -> Iterator[str]:
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            yield from fields.get("uris", "").split()


def _one_line_uris(text: str) -> Iterator[str]:
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = [w for w in words[1:] if not w.startswith("[")]  # drop [arch=… signed-by=…]
        if words:
            yield words[0]


def apt_uris(sources: tuple[Path, ...] = APT_SOURCES) -> list[str]:
    """Every ``deb`` URI in the host's apt sources, in file order."""
    files: list[Path] = []
    for src in sources:
        if src.is_dir():
            files += sorted(p for p in src.iterdir() if p.suffix in (".list", ".sources"))
        elif src.is_file():
            files.append(src)
    uris: list[str] = []
    for f in files:
        text = f.read_text(errors="replace")
        uris += _deb822_uris(text) if f.suffix == ".sources" else _one_line_uris(text)
    return uris


def find_mirror(sources: tuple[Path, ...] = APT_SOURCES) -> str:
    """The host's Debian archive mirror (not the security archive, not third-party repos)."""
    for uri in apt_uris(sources):
        path = uri.rstrip("/")
        if path.endswith("/debian") and "security" not in path:
            return path
    raise LabError(
        "no Debian mirror in the host's apt sources (looked for a `deb` URI ending in /debian "
        "in /etc/apt/sources.list and /etc/apt/sources.list.d); set lab.mirror "
        "(HOTLINE_LAB_MIRROR) to one"
    )


def check_mirror(mirror: str, suite: str, timeout: float = 10.0) -> None:
    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            if resp.status != 200:
                raise LabError(f"mirror answered {resp.status} for {url}")
    except (urllib.error.URLError, OSError) as exc:
        raise LabError(f"the Debian mirror is unreachable ({url}): {exc}") from None


def require_root_user() -> None:
    if os.geteuid() != 0:
        raise LabError(
            "the lab needs root (mmdebstrap, chroot and mounting /proc); run it as root, "
            "e.g. `sudo .venv/bin/hotline lab up`"
        )


def require_mmdebstrap() -> str:
    path = shutil.which("mmdebstrap")
    if path is None:
        raise LabError(
            "mmdebstrap is not installed; install it with `apt-get install -y mmdebstrap`"
        )
    return path


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def root_path(cache: Path, suite: str) -> Path:
    return cache / f"root-{suite}-{stamp(suite)}"


def ensure_root(cache: Path, suite: str, mirror: str = "", log: Path | None = None) -> Path:
    """Return the cached root, building it first if it is not there."""
    require_root_user()
    target = root_path(cache, suite)
    if (target / ".hotline-ready").exists():
        return target
    with _locked(cache):
        if (target / ".hotline-ready").exists():
            return target
        mmdebstrap = require_mmdebstrap()
        mirror = mirror or find_mirror()
        check_mirror(mirror, suite)
        tmp = cache / f".build-{target.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [
            mmdebstrap,
            "--variant=apt",
            *(f"--aptopt={o}" for o in APT_OPTIONS),
            "--include=" + ",".join(PACKAGES),
            suite,
            str(tmp),
            mirror,
        ]
        log = log or cache / f"{target.name}.build.log"
        with open(log, "w") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tail = "".join(log.read_text(errors="replace").splitlines(True)[-15:])
            raise LabError(f"mmdebstrap failed (exit {proc.returncode}); see {log}:\n{tail}")
        (tmp / ".hotline-ready").write_text(f"{suite} {stamp(suite)}\n")
        shutil.rmtree(target, ignore_errors=True)
        os.rename(tmp, target)
    return target


def module_dir(root: Path) -> str:
    found = sorted(root.glob("usr/lib/*/asterisk/modules"))
    if not found:
        raise LabError(f"no Asterisk modules in {root}; remove the root to rebuild it")
    return "/" + str(found[0].relative_to(root))
