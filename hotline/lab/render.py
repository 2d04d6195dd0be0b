"""Asterisk configuration for the lab, rendered from ``hotline/config/asterisk/*``.

Templates use ``{{name}}`` placeholders (Asterisk itself owns ``${…}``); an unknown or missing
name is an error, never an empty string in a config file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from hotline.config.settings import Settings

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
AGENT_EXTENSIONS = range(8001, 8100)
UTILITIES = ("water", "power", "gas")


@dataclass(frozen=True, slots=True)
class Credentials:
    """An instance's secrets (``<home>/credentials.json``, mode 0600; generated once)."""

    ari_user: str
    ari_password: str
    ami_user: str
    ami_password: str
    agi_secret: str  # the dialplan's agi://…/ivr?secret=…, the backend's server.agi_secret
    agent_passwords: Mapping[str, str]  # agent extension -> its own SIP digest password

    @property
    def fallback_key(self) -> str:
        """The key the dialplan seals the caller's number with in safe-path recording names;
        derived from the ARI password, so the backend (which has it) can open them."""
        from hotline.ivr.fallback import fallback_key  # the backend's side of it; heavy imports

        return fallback_key(self.ari_password)


def render(template: str, values: Mapping[str, object]) -> str:
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(values))
    if missing:
        raise KeyError(f"template needs values for: {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def templates() -> dict[str, str]:
    folder = resources.files("hotline.config") / "asterisk"
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".conf")
    }


def agent_endpoints(passwords: Mapping[str, str]) -> str:
    """The agent phones, each with its own password (a missing one is an error)."""
    out = []
    for ext in AGENT_EXTENSIONS:
        out.append(
            f"[{ext}](lab-endpoint)\ncontext = hotline-agents\nauth = {ext}\naors = {ext}\n\n"
            f"[{ext}]\ntype = auth\nauth_type = userpass\nusername = {ext}\n"
            f"password = {passwords[str(ext)]}\n\n"
            f"[{ext}]\ntype = aor\nmax_contacts = 1\nremove_existing = yes\n"
        )
    return "\n".join(out)


def utility_port(sip_port: int, endpoint: str) -> int:
    """The port a utility's SIPp duty line listens on: ``utility-water`` at the SIP port + 11,
    power + 12, gas + 13; each utility's second number (``utility-water-2``) at + 14 … + 16."""
    unit, _, second = endpoint.removeprefix("utility-").partition("-")
    return sip_port + 11 + UTILITIES.index(unit) + (3 if second == "2" else 0)


def utility_endpoints(sip_port: int) -> str:
    """Two duty lines per utility (the directory tries them in order, rule H-6)."""
    out = []
    for unit in UTILITIES:
        for name in (f"utility-{unit}", f"utility-{unit}-2"):
            port = utility_port(sip_port, name)
            out.append(
                f"[{name}](lab-endpoint)\ncontext = hotline-agents\naors = {name}\n\n"
                f"[{name}]\ntype = aor\ncontact = sip:{unit}@127.0.0.1:{port}\n"
            )
    return "\n".join(out)


def instance_values(
    settings: Settings, home: str, module_dir: str, creds: Credentials
) -> dict[str, object]:
    lab = settings.lab
    return {
        "instance": lab.instance,
        "home": home,
        "module_dir": module_dir,
        "sip_port": lab.sip_port,
        "http_port": lab.http_port,
        "ami_port": lab.ami_port,
        "rtp_start": lab.rtp_start,
        "rtp_end": lab.rtp_end,
        "citizen_port": lab.sip_port + 1,
        "operator_port": lab.sip_port + 10,
        "agi_host": settings.server.agi_host,
        "agi_port": settings.server.agi_port,
        "ari_user": creds.ari_user,
        "ari_password": creds.ari_password,
        "ami_user": creds.ami_user,
        "ami_password": creds.ami_password,
        "agi_secret": creds.agi_secret,
        "fallback_key": creds.fallback_key,
        "agent_endpoints": agent_endpoints(creds.agent_passwords),
        "utility_endpoints": utility_endpoints(lab.sip_port),
        "ari_app": settings.ari.app,
    }


def render_all(values: Mapping[str, object]) -> dict[str, str]:
    return {name: render(text, values) for name, text in templates().items()}
