"""Dependencies point inwards: the import contracts in pyproject.toml, checked by import-linter,
and no module takes another subpackage's private names.

The contracts are also run against a copy of the package with a violation planted in it, so a
contract that could never fail (a typo in a module name, say) fails here.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = str(Path(sys.executable).with_name("lint-imports"))


def _lint(cwd: Path, package_parent: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT, "--config", str(cwd / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(package_parent)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_hold() -> None:
    run = _lint(ROOT, ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout or "broken" not in run.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("agi/ari.py", "import hotline.ivr.flows", "agi/ is the Asterisk layer"),
        ("agi/protocol.py", "import hotline.ticketing.model", "agi/ is the Asterisk layer"),
        ("agi/channel.py", "import hotline.queue.presence", "agi/ is the Asterisk layer"),
        ("ticketing/service.py", "import aiohttp", "the ticketing core imports no web"),
        ("ticketing/views.py", "import hotline.appkeys", "the ticketing core imports no web"),
        ("ticketing/ticket.py", "import hotline.db", "the pure aggregate does no I/O"),
        # a module the contract does not name (it names the package): covered all the same
        ("ticketing/assignment.py", "import hotline.web", "the ticketing core imports no web"),
        ("queue/acd.py", "import redis", "the ACD model is pure"),
        ("queue/agent.py", "import hotline.db", "the ACD model is pure"),
    ],
)
def test_a_planted_violation_breaks_its_contract(
    tmp_path: Path, module: str, planted: str, contract: str
) -> None:
    shutil.copytree(ROOT / "hotline", tmp_path / "hotline", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "hotline" / module
    text = target.read_text(encoding="utf-8")
    head, sep, rest = text.partition("from __future__ import annotations\n")
    target.write_text(head + sep + planted + "  # noqa\n" + rest, encoding="utf-8")
    run = _lint(tmp_path, tmp_path)
    assert run.returncode != 0, run.stdout
    broken = run.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, run.stdout


def _private_imports() -> list[str]:
    """``from hotline.a.b import _name`` in a module outside subpackage ``hotline.a``."""
    found = []
    for path in sorted((ROOT / "hotline").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        home = parts[1] if len(parts) > 2 else parts[-1]  # subpackage, or top-level module
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            source = node.module.split(".")
            if source[0] != "hotline" or len(source) < 2 or source[1] == home:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{'/'.join(parts)}: {node.module}.{alias.name}")
    return found


def test_no_module_takes_another_subpackage_s_private_names() -> None:
    assert _private_imports() == []
