"""Place a lab call and watch, over AMI, what Asterisk did with it."""

from __future__ import annotations

from dataclasses import dataclass, field

from hotline.lab.ami import AMIListener, Message
from hotline.lab.instance import Lab
from hotline.lab.sipp import CallPlan, CallResult, place_call

WATCHED = ("HotlineHandoff", "HotlineFallback", "HotlineVoicemail")
SHOWN = ("Route", "Type", "CallPriority", "Utility", "Ticket", "Path", "Status", "Error")


@dataclass(slots=True)
class ObservedCall:
    plan: CallPlan
    call: CallResult
    events: list[Message] = field(default_factory=list)  # UserEvents of this call, in order
    dialplan: list[tuple[str, str, str]] = field(default_factory=list)  # (context, app, data)
    agi: list[str] = field(default_factory=list)  # AGI commands Asterisk ran, in order

    def played(self) -> list[str]:
        """Sound names the IVR played over AGI (STREAM FILE and GET DATA)."""
        out = []
        for command in self.agi:
            words = command.split()
            if words[:2] in (["STREAM", "FILE"], ["GET", "DATA"]):
                out.append(words[2])
        return out

    def user_events(self, name: str) -> list[Message]:
        return [e for e in self.events if e.get("UserEvent") == name]

    def summary(self) -> list[str]:
        lines = [
            f"SIPp: {'call succeeded' if self.call.ok else 'call FAILED'} "
            f"(exit {self.call.exit_code})"
        ]
        for e in self.events:
            detail = {k: v for k, v in e.items() if k in SHOWN and v}
            lines.append(f"Asterisk: {e.get('UserEvent')} {detail}")
        if not self.events:
            lines.append("Asterisk: no hotline events seen for this caller")
        if not self.call.ok:
            lines.append(self.call.output[-2000:])
        return lines


async def observe_call(lab: Lab, plan: CallPlan, timeout_s: float = 60.0) -> ObservedCall:
    creds = lab.credentials()
    ami_port = lab.lab.ami_port
    async with AMIListener("127.0.0.1", ami_port, creds.ami_user, creds.ami_password) as ami:
        result = await place_call(
            lab.root, f"{lab.home_in_root}/sipp", lab.lab.sip_port, plan, timeout_s
        )
        mine = [e for e in ami.events if e.get("CallerIDNum") == plan.caller]
    events = [e for e in mine if e.get("Event") == "UserEvent" and e.get("UserEvent") in WATCHED]
    steps = [
        (e.get("Context", ""), e.get("Application", ""), e.get("AppData", ""))
        for e in mine
        if e.get("Event") == "Newexten"
    ]
    agi = [e.get("Command", "") for e in mine if e.get("Event") == "AGIExecStart"]
    return ObservedCall(plan, result, events, steps, agi)
