"""The HTML pages featurize writes (the audit report, search results): one
self-contained file each, thumbnails inlined as data URLs, written atomically."""

from __future__ import annotations

import base64
import html
import io

from pipelines._files import atomic_output

THUMBNAIL = 160
BASE_STYLE = """
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse}td,th{padding:4px 8px;border:1px solid #ddd;
vertical-align:top}th{background:#f4f4f4}
.text{white-space:pre-wrap;font-size:12px;max-height:9em;overflow:auto}
small{color:#666}
"""


def page_html(title: str, body: str, style: str = "") -> str:
    """A whole page: the shared style, then ``style``, around ``body``."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        f"<style>{BASE_STYLE}{style}</style></head><body>\n{body}\n</body></html>"
    )


def write_page(path, page: str) -> None:
    """Write ``page`` (HTML) to ``path``, atomically."""
    with (
        atomic_output(path) as temporary,
        open(temporary, "w", encoding="utf-8") as out,
    ):
        out.write(page)


class Thumbnails:
    """Each image read once, shrunk and inlined as a data URL ("" where it cannot
    be read: the caption names it)."""

    def __init__(self):
        self.seen: dict = {}

    def __call__(self, path) -> str:
        if path not in self.seen:
            self.seen[path] = _thumbnail(path)
        return self.seen[path]


def _thumbnail(path) -> str:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return data_url(image)
    except (OSError, ValueError):
        return ""


def data_url(image, side: int = THUMBNAIL) -> str:
    """A PIL image shrunk to fit ``side`` pixels, as an inline JPEG data URL."""
    image = image.convert("RGB")
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
