"""One Asterisk instance running in the lab root: up, down, status, logs.

Each instance has a home inside the root (``/var/lib/hotline-lab/<instance>``) holding its
rendered configuration, run, log, spool and astdb directories, its credentials and its pid
file, so a test instance and a developer's instance can run side by side on other ports.
Asterisk runs with ``chroot <root> asterisk -f -C <home>/etc/asterisk.conf`` and is stopped by
the pid we started; nothing else is ever signalled.

Nothing in a home is for other users: its configuration holds passwords and the AGI secret,
its recordings and logs are citizens' calls. Directories are 0750, files 0640 (credentials
0600), and Asterisk runs with umask 027 so what it writes (logs, recordings, astdb) is too.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hotline.config.settings import Settings
from hotline.lab import render
from hotline.lab.root import LabError, ensure_root, module_dir, require_root_user, root_path

HOME_IN_ROOT = "/var/lib/hotline-lab"
SOUNDS_IN_ROOT = "/usr/share/asterisk/sounds/hotline"
DIR_MODE, FILE_MODE, SECRET_MODE = 0o750, 0o640, 0o600
ASTERISK_UMASK = 0o027


@dataclass(frozen=True, slots=True)
class Status:
    running: bool
    pid: int | None
    version: str = ""
    detail: str = ""


class Lab:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lab = settings.lab
        self.root = root_path(self.lab.cache_dir, self.lab.suite)
        self.home_in_root = f"{HOME_IN_ROOT}/{self.lab.instance}"
        self.home = self.root / self.home_in_root.lstrip("/")

    # -- paths -------------------------------------------------------------------------------
    @property
    def pid_file(self) -> Path:
        return self.home / "asterisk.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "log" / "messages.log"

    @property
    def console_log(self) -> Path:
        return self.home / "log" / "console.log"

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.lab.http_port}/ari"

    # -- credentials -------------------------------------------------------------------------
    def credentials(self) -> render.Credentials:
        """The instance's secrets, generated once; what an older file lacks (the AGI secret,
        one password per agent phone) is added to it, the ARI/AMI passwords are kept."""
        path = self.home / "credentials.json"
        stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        creds = complete_credentials(stored)
        if asdict(creds) != stored:
            self.home.mkdir(parents=True, exist_ok=True)
            _write(path, json.dumps(asdict(creds)), SECRET_MODE)
        return creds

    # -- up ----------------------------------------------------------------------------------
    def build(self) -> Path:
        return ensure_root(self.lab.cache_dir, self.lab.suite, self.lab.mirror)

    def up(self, prompts_dir: Path | None = None, extra: Mapping[str, str] | None = None) -> Status:
        """Start the instance. ``extra``: configuration a bench adds (file name -> text appended
        to the rendered or stock file of that name, or a new file), e.g. more endpoints."""
        require_root_user()
        current = self.status()
        if current.running:
            return current
        self.build()
        self._prepare(prompts_dir, extra or {})
        self._check_ports_free()
        self._mount_proc()
        try:
            return self._wait_ready(self._start())
        except BaseException:
            self._unmount_proc_if_idle()
            raise

    def _prepare(self, prompts_dir: Path | None, extra: Mapping[str, str]) -> None:
        for sub in ("etc", "run", "log", "spool/recording", "lib", "cache", "sipp", "moh"):
            (self.home / sub).mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        _hold_music(self.home / "moh" / "chime.wav")
        private(self.home)  # also what an older version left readable
        stock = self.root / "etc" / "asterisk"
        for conf in stock.glob("*.conf"):  # sane defaults (indications, features, …) first
            shutil.copyfile(conf, self.home / "etc" / conf.name)
            os.chmod(self.home / "etc" / conf.name, FILE_MODE)
        (self.root / "var" / "lib" / "asterisk" / "keys").mkdir(parents=True, exist_ok=True)
        values = render.instance_values(
            self.settings, self.home_in_root, module_dir(self.root), self.credentials()
        )
        for name, text in render.render_all(values).items():
            _write(self.home / "etc" / name, text, FILE_MODE)
        add_configuration(self.home / "etc", extra)
        hosts = self.root / "etc" / "hosts"
        name = socket.gethostname()
        if name not in hosts.read_text().split():
            with open(hosts, "a") as fh:
                fh.write(f"127.0.1.1\t{name}\n")
        if prompts_dir is not None:
            self.install_prompts(prompts_dir)

    def install_prompts(self, prompts_dir: Path) -> None:
        """Copy built prompts where the lab's Asterisk finds them (``hotline/<name>``)."""
        sounds = self.root / SOUNDS_IN_ROOT.lstrip("/")
        sounds.mkdir(parents=True, exist_ok=True)
        for wav in prompts_dir.glob("*.wav"):
            shutil.copyfile(wav, sounds / wav.name)

    def _mount_proc(self) -> None:
        proc = self.root / "proc"
        if not os.path.ismount(proc):
            subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)

    def _check_ports_free(self) -> None:
        for kind, port in (
            ("tcp", self.lab.http_port),
            ("tcp", self.lab.ami_port),
            ("udp", self.lab.sip_port),
        ):
            sock = socket.socket(
                socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
            )
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                raise LabError(
                    f"{kind} port 127.0.0.1:{port} is taken; stop what uses it or set the lab "
                    "ports (HOTLINE_LAB_SIP_PORT, HOTLINE_LAB_HTTP_PORT, HOTLINE_LAB_AMI_PORT)"
                ) from None
            finally:
                sock.close()

    def _start(self) -> subprocess.Popen[bytes]:
        conf = f"{self.home_in_root}/etc/asterisk.conf"
        fd = os.open(self.console_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        with open(fd, "ab") as out:
            proc = subprocess.Popen(
                ["chroot", str(self.root), "/usr/sbin/asterisk", "-f", "-n", "-C", conf],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=ASTERISK_UMASK,  # its logs, recordings and astdb: not world-readable
            )
        _write(self.pid_file, str(proc.pid), FILE_MODE)
        return proc

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> Status:
        deadline = time.monotonic() + self.lab.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise LabError(
                    f"Asterisk exited while starting (exit {proc.returncode}):\n"
                    + self.tail(self.console_log, 20)
                )
            status = self.status()
            if status.version:
                return status
            time.sleep(0.2)
        self.down()
        raise LabError(
            f"Asterisk did not answer {self.ari_url}/asterisk/info within "
            f"{self.lab.start_timeout:.0f}s; see {self.log_file}"
        )

    # -- status ------------------------------------------------------------------------------
    def _pid(self) -> int | None:
        return _running_pid(self.pid_file, f"{self.home_in_root}/etc/asterisk.conf")

    def ari_get(self, path: str, timeout: float = 2.0) -> object:
        creds = self.credentials()
        req = urllib.request.Request(self.ari_url + path)
        token = base64.b64encode(f"{creds.ari_user}:{creds.ari_password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def status(self) -> Status:
        pid = self._pid()
        if pid is None:
            return Status(False, None)
        try:
            info = self.ari_get("/asterisk/info")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return Status(True, pid, detail=f"ARI not answering yet: {exc}")
        version = info.get("system", {}).get("version", "?") if isinstance(info, dict) else "?"
        return Status(True, pid, version=version)

    # -- down --------------------------------------------------------------------------------
    def down(self, timeout: float = 15.0) -> bool:
        """Stop our Asterisk by pid; returns whether one was running."""
        require_root_user()
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._alive(pid):
                time.sleep(0.1)
            if self._alive(pid) and self._pid() == pid:  # still ours, not a recycled pid
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and self._alive(pid):
                    time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        self._unmount_proc_if_idle()
        return pid is not None

    @staticmethod
    def _alive(pid: int) -> bool:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap if it is our child
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return False
        return state != "Z"

    def _unmount_proc_if_idle(self) -> None:
        homes = self.root / HOME_IN_ROOT.lstrip("/")
        for pid_file in homes.glob("*/asterisk.pid"):
            conf = f"{HOME_IN_ROOT}/{pid_file.parent.name}/etc/asterisk.conf"
            if pid_file != self.pid_file and _running_pid(pid_file, conf) is not None:
                return  # another instance still runs in this root
        proc = self.root / "proc"
        if os.path.ismount(proc):
            subprocess.run(["umount", str(proc)], check=False)

    # -- logs --------------------------------------------------------------------------------
    @staticmethod
    def tail(path: Path, lines: int) -> str:
        try:
            return "".join(path.read_text(errors="replace").splitlines(True)[-lines:])
        except OSError:
            return f"(no {path})"


def complete_credentials(stored: dict[str, Any]) -> render.Credentials:
    """``stored`` with every secret it lacks generated (an older file's ``agent_password``,
    shared by all the agent phones, gives way to one password per phone)."""
    agents = dict(stored.get("agent_passwords") or {})
    for ext in render.AGENT_EXTENSIONS:
        agents.setdefault(str(ext), secrets.token_urlsafe(12))
    return render.Credentials(
        ari_user=stored.get("ari_user") or "hotline",
        ari_password=stored.get("ari_password") or secrets.token_urlsafe(16),
        ami_user=stored.get("ami_user") or "hotline",
        ami_password=stored.get("ami_password") or secrets.token_urlsafe(16),
        agi_secret=stored.get("agi_secret") or secrets.token_urlsafe(24),
        agent_passwords={k: agents[k] for k in sorted(agents)},
    )


def _write(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` with ``mode`` (an existing file gets it too) — atomically, so
    neither a reader nor a crash sees a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600, ours alone
    try:
        with open(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fd, mode)
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def private(home: Path) -> None:
    """Take group write and everything for others off every directory and file in ``home``."""
    os.chmod(home, os.stat(home).st_mode & DIR_MODE)
    for folder, dirs, files in os.walk(home):  # symbolic links are left alone, not followed
        for name, mask in [(d, DIR_MODE) for d in dirs] + [(f, 0o740) for f in files]:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode):
                os.chmod(path, mode & mask)


def _running_pid(pid_file: Path, conf: str) -> int | None:
    """The pid in ``pid_file`` if that process is an Asterisk started with ``conf``."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if conf.encode() in cmdline else None  # our Asterisk, not a recycled pid


def add_configuration(etc: Path, extra: Mapping[str, str]) -> None:
    """Append each text to the configuration file of its name in ``etc`` (or create it)."""
    for name, text in extra.items():
        if "/" in name or name.startswith(".") or not name.endswith(".conf"):
            raise LabError(f"extra configuration {name!r}: a file name ending in .conf")
        path = etc / name
        before = path.read_text(encoding="utf-8") if path.exists() else ""
        _write(path, f"{before}\n; -- added for this run\n{text}", FILE_MODE)


def _hold_music(target: Path) -> None:
    """Music on hold for the lab: a soft chime (A4 then E5, then quiet), 8 kHz mono WAV."""
    if target.exists():
        return
    sox = shutil.which("sox")
    if sox is None:
        raise LabError("sox is not installed; run scripts/setup (apt-get install -y sox)")
    tmp = target.with_suffix(".tmp.wav")
    synth = [sox, "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(tmp)]
    synth += ["synth", "0.6", "sine", "440", "sine", "659", "vol", "0.15", "pad", "0", "1.4"]
    synth += ["repeat", "9"]
    proc = subprocess.run(synth, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"sox could not make the hold music: {proc.stderr.strip()}")
    tmp.replace(target)
