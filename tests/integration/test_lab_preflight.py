"""`hotline lab up` fails with a clear message when it cannot build the root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HOTLINE = str(Path(sys.executable).with_name("hotline"))


def lab_up(
    tmp_path: Path, env: dict[str, str], user: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        **os.environ,
        "HOTLINE_LAB_CACHE_DIR": str(tmp_path / "cache"),
        "HOTLINE_LAB_INSTANCE": "preflight",
        "HOTLINE_PROMPTS_BUILD_DIR": str(tmp_path / "prompts"),
    }
    return subprocess.run(
        [*(user or []), HOTLINE, "lab", "up"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_not_root_is_refused_with_the_reason(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    setpriv = shutil.which("setpriv")
    assert setpriv, "util-linux setpriv is part of every Debian system"
    result = lab_up(tmp_path, {}, [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"])
    assert result.returncode == 1
    assert "the lab needs root" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_mmdebstrap_says_how_to_install_it(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("espeak-ng", "sox"):  # the prompts still build; only mmdebstrap is gone
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    result = lab_up(tmp_path, {"PATH": str(bin_dir)})
    assert result.returncode == 1
    assert "apt-get install -y mmdebstrap" in result.stderr


def test_unreachable_mirror_is_named(tmp_path: Path) -> None:
    result = lab_up(tmp_path, {"HOTLINE_LAB_MIRROR": "http://127.0.0.1:9/debian"})
    assert result.returncode == 1
    assert "mirror is unreachable" in result.stderr and "127.0.0.1:9" in result.stderr
    assert not any((tmp_path / "cache").glob("root-*"))  # nothing half-built left behind
