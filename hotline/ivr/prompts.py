"""Prompts: texts from config -> Mandarin WAV (espeak-ng + sox, 8 kHz mono 16-bit).

A recorded file ``<recorded_dir>/<name>.wav`` replaces the generated one of the same name.
Generated files are cached by a hash of (voice, speed, text): ``manifest.json`` in the build
directory remembers the hash each file was made from, so an unchanged text is not spoken again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hotline.config.settings import PromptSettings


class PromptError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Built:
    name: str
    path: Path
    source: str  # "generated", "cached" or "recorded"


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PromptError(
            f"{name} is not installed; install it with `apt-get install -y {package}`"
        )
    return path


def _key(settings: PromptSettings, text: str) -> str:
    return hashlib.sha256(f"{settings.voice}|{settings.speed}|{text}".encode()).hexdigest()


def _to_asterisk_wav(source: Path, target: Path) -> None:
    """Any audio sox reads -> 8 kHz, mono, 16-bit signed PCM WAV (Asterisk's ``wav`` format)."""
    sox = _tool("sox", "sox")
    tmp = target.with_suffix(".tmp.wav")
    proc = subprocess.run(
        [sox, str(source), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(tmp)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise PromptError(f"sox could not convert {source}: {proc.stderr.strip()}")
    tmp.replace(target)


def _speak(settings: PromptSettings, text: str, target: Path) -> None:
    espeak = _tool("espeak-ng", "espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        proc = subprocess.run(
            [espeak, "-v", settings.voice, "-s", str(settings.speed), "-w", str(raw), text],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 or not raw.exists():
            raise PromptError(
                f"espeak-ng failed for voice {settings.voice!r}: {proc.stderr.strip()}"
            )
        _to_asterisk_wav(raw, target)


SILENCE = "silence"  # a short pause, for collecting keys without a prompt


def build_prompts(settings: PromptSettings, extra: Mapping[str, str] | None = None) -> list[Built]:
    """Every prompt text (and ``extra`` ones, e.g. unit names) as an 8 kHz WAV."""
    out_dir = settings.build_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    try:
        manifest: dict[str, str] = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    built: list[Built] = []
    texts = {**settings.texts, **(extra or {})}
    for name, text in sorted(texts.items()):
        target = out_dir / f"{name}.wav"
        recorded = settings.recorded_dir / f"{name}.wav"
        if recorded.is_file():
            _to_asterisk_wav(recorded, target)
            manifest[name] = "recorded:" + hashlib.sha256(recorded.read_bytes()).hexdigest()
            built.append(Built(name, target, "recorded"))
            continue
        key = _key(settings, text)
        if manifest.get(name) == key and target.is_file():
            built.append(Built(name, target, "cached"))
            continue
        _speak(settings, text, target)
        manifest[name] = key
        built.append(Built(name, target, "generated"))
    built.append(_silence(out_dir / f"{SILENCE}.wav"))
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return built


def _silence(target: Path) -> Built:
    if target.is_file():
        return Built(SILENCE, target, "cached")
    sox = _tool("sox", "sox")
    proc = subprocess.run(
        [
            sox,
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            str(target),
            "trim",
            "0.0",
            "0.3",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise PromptError(f"sox could not make silence: {proc.stderr.strip()}")
    return Built(SILENCE, target, "generated")


def unit_texts(units: Mapping[str, str]) -> dict[str, str]:
    """Prompts for the names of linked units (spoken in ticket progress)."""
    return {
        f"unit_{unit_id}": name
        for unit_id, name in units.items()
        if unit_id.replace("_", "").replace("-", "").isalnum()
    }
