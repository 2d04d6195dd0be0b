"""The utility duty directory in the API (rule H-6): ``GET /api/v1/utilities`` for the office,
with the numbers on duty now."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hotline.appkeys import CLOCK
from hotline.errors import Forbidden
from hotline.ticketing.actions import OFFICE
from hotline.utility.directory import Directory
from hotline.utility.recordings import ConferenceRecordings
from hotline.web import current_user, ok

DIRECTORY = web.AppKey("utility_directory", Directory)
# the job that takes three-way call recordings off the switch (None: no ARI on this node)
CONFERENCE_RECORDINGS: web.AppKey[ConferenceRecordings | None] = web.AppKey("conference_recs")


def directory_json(directory: Directory, now: Any) -> list[dict[str, Any]]:
    out = []
    for u in directory.utilities.values():
        on_duty = {d.number for d in directory.numbers_at(u.utility, now)}
        out.append(
            {
                "utility": u.utility,
                "unit": u.unit,
                "name": u.name,
                "categories": list(u.categories),
                "duty": [
                    {
                        "number": d.number,
                        "hours": d.text or "00:00-24:00",
                        "on_duty": d.number in on_duty,
                    }
                    for d in u.duty
                ],
            }
        )
    return out


async def utilities(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user.actor.role not in OFFICE:
        raise Forbidden("role_forbidden", "the duty directory is the office's", "H-6")
    now = request.app[CLOCK].now()
    return ok({"utilities": directory_json(request.app[DIRECTORY], now)})


def setup(app: web.Application, directory: Directory) -> None:
    app[DIRECTORY] = directory
    app.router.add_get("/api/v1/utilities", utilities)
