"""The agent console's files: the Vue app that ``scripts/setup`` builds into ``web/dist``,
served at ``/console/`` (Chinese first). Paths outside the build are never served; a path
without a file extension is the app's own page (its routes live in the browser)."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
MISSING = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>12345 坐席台</title></head>
<body><h1>12345 坐席台</h1><p>坐席台尚未构建：请运行 <code>scripts/setup</code>
（npm ci &amp;&amp; npm run build，生成 web/dist）。 The console is not built: run
scripts/setup.</p></body></html>
"""


def _file(dist: Path, wanted: str) -> Path | None:
    if not wanted or "." not in wanted.rsplit("/", 1)[-1]:
        wanted = "index.html"  # the app's own page
    path = (dist / wanted).resolve()
    if not path.is_relative_to(dist.resolve()) or not path.is_file():
        return None
    return path


async def page(request: web.Request) -> web.StreamResponse:
    dist: Path = request.app.get(DIST_KEY, DIST)
    if not (dist / "index.html").is_file():
        return web.Response(text=MISSING, content_type="text/html", status=503)
    path = _file(dist, request.match_info.get("path", ""))
    if path is None:
        raise web.HTTPNotFound()
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    cache = "no-cache" if path.name == "index.html" else "public, max-age=31536000, immutable"
    return web.Response(body=path.read_bytes(), content_type=kind, headers={"Cache-Control": cache})


DIST_KEY = web.AppKey("console_dist", Path)


def setup(app: web.Application) -> None:
    app.router.add_get("/console/{path:.*}", page)
