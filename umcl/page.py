"""The page people try the model on: one HTML file (umcl/page.html: plain JavaScript, nothing to
install) served by the service itself at /ui. It sends the files a person drops to `/explain`
and shows each image, its findings by probability against their thresholds, and a finding's map
on click. The page holds no data and no key — it asks for the key when the service has one and
sends it with its own calls — so, like the probes, it is served without one (umcl/auth.py)."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

PAGE_FILE = Path(__file__).with_name("page.html")
PATH = "/ui"  # where the service mounts it
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",  # not inside another site's frame
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; "
    "frame-ancestors 'none'",
}


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE_FILE.read_text(encoding="utf-8"), headers=HEADERS)


app = Starlette(routes=[Route("/", page, methods=["GET", "HEAD"])])
