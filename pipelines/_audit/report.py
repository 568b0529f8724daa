"""The audit as a page a person would rather read: one self-contained HTML file,
thumbnails inlined, each finding with what to do about it."""

from __future__ import annotations

import base64
import html
import io

from pipelines._files import atomic_output

THUMBNAIL = 160
# Rows shown per kind; the table (--out) holds them all.
SHOWN = 200
ADVICE = {
    "exact_duplicate": "Identical copies. Keep one; where they sit in different "
    "splits, the held-out score counts training items. Different labels on one "
    "item are a contradiction: decide which is right.",
    "near_duplicate": "Re-encoded, resized or cropped copies (or shots of one "
    "scene). Keep them on one side of every split (--group-duplicates for "
    "`featurize train` and `search`, group_duplicates=True for compare_models), "
    "or remove the extras.",
    "label_issue": "The cross-validated model is confident the given label is "
    "wrong. Look at each and relabel where the suggestion is right.",
    "outlier": "Unlike the rest of the set or of its class: blank, corrupt, the "
    "wrong kind of image, or a rare case worth more examples.",
    "unreadable": "Could not be read or embedded, so nothing above covers them: "
    "fix or remove each (the reason says what is wrong).",
    "unchecked": 'Left out of a check, so its "none found" does not cover '
    "them (the reason says which check, and why): label more of a tiny class, "
    "or give unlabelled items a label.",
}
TITLES = {"unreadable": "unreadable items", "unchecked": "unchecked items"}
# What differs for a table of texts.
TEXT_ADVICE = {
    "near_duplicate": "Reworded copies (templates with another number or name). "
    "Keep them on one side of every split (--group-duplicates for `featurize "
    "train`), or remove the extras.",
    "outlier": "Unlike the rest of the set or of its class: empty, another "
    "language, or a rare case worth more examples.",
}
_STYLE = """
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse}td,th{padding:4px 8px;border:1px solid #ddd;
vertical-align:top}th{background:#f4f4f4}
.finding{display:inline-block;margin:6px;padding:6px;border:1px solid #ddd;
width:340px;vertical-align:top}.finding img{width:160px;height:160px;
object-fit:contain;background:#eee}.conflict{border-color:#c00}
.pair{display:flex;gap:8px}.pair>div{width:160px;overflow-wrap:anywhere}
.text{white-space:pre-wrap;font-size:12px;max-height:9em;overflow:auto}
.advice{background:#f7f7e8;padding:8px;border-left:4px solid #cc6}
small{color:#666}
"""


def write_report(audit, path) -> None:
    """Write ``audit`` (an :class:`Audit`) as one self-contained HTML page."""
    with (
        atomic_output(path) as temporary,
        open(temporary, "w", encoding="utf-8") as out,
    ):
        out.write(render(audit))


def render(audit) -> str:
    findings = audit.findings
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>featurize audit</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Can I trust this score? An audit</h1>",
        f"<p>{html.escape(audit.summary())}.</p>",
        f"<p><small>Near duplicates: {html.escape(audit.near_rule())}. Label "
        f"issues: confident learning (cleanlab) on out-of-fold probabilities of a "
        f"logistic regression on the embeddings{_strength(audit)}.</small></p>",
        _counts(audit),
    ]
    thumbnails = _Thumbnails()
    for kind in ADVICE:
        rows = findings[findings["kind"] == kind]
        title = TITLES.get(kind, f"{kind.replace('_', ' ')}s")
        parts.append(f"<h2 id='{kind}'>{title} ({len(rows)})</h2>")
        advice = ADVICE[kind]
        if audit.modality == "text":
            advice = TEXT_ADVICE.get(kind, advice)
        parts.append(f"<p class='advice'>{html.escape(advice)}</p>")
        if not len(rows):
            parts.append("<p>None found.</p>")
        for row in rows.head(SHOWN).itertuples(index=False):
            parts.append(_finding(audit, row._asdict(), thumbnails))
        if len(rows) > SHOWN:
            parts.append(f"<p>... and {len(rows) - SHOWN} more in the table.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _strength(audit) -> str:
    model = audit.label_model
    if not model:
        return ""
    return f" (its accuracy on the given labels: {model['accuracy']:.2f})"


def _counts(audit) -> str:
    items = audit.items.assign(split=audit.items["split"].fillna("-"))
    by_class = items.groupby(["split", "label"]).size().unstack(fill_value=0)
    counts = audit.counts()
    return (
        "<h2>Items per split and class</h2>"
        + by_class.to_html(border=0)
        + "<h2>Findings per kind and split</h2>"
        + (counts.to_html(border=0) if len(counts) else "<p>No findings.</p>")
    )


def _finding(audit, row: dict, thumbnails) -> str:
    key = audit.key
    members = [(row[key], row["split"], row["label"])]
    if _given(row.get(f"other_{key}")):
        members.append((row[f"other_{key}"], row["other_split"], row["other_label"]))
    cells = []
    for n, (item, split, label) in enumerate(members):
        if audit.modality == "image":
            shown = f"<img alt='{html.escape(str(item))}' src='{thumbnails(item)}'>"
        else:
            text = row["text"] if n == 0 else row["other_text"]
            shown = f"<div class='text'>{html.escape(str(text))}</div>"
        name = str(item) if audit.modality == "image" else f"row {item}"
        where = f"split {html.escape(str(split))}, " if _given(split) else ""
        cells.append(
            f"<div>{shown}<br><small>{html.escape(name)}<br>{where}label "
            f"<b>{html.escape(str(label))}</b></small></div>"
        )
    note = (
        html.escape(str(row["reason"]))
        if _given(row.get("reason"))
        else f"score {row['score']:.3f}"
    )
    if _given(row["suggested_label"]):
        note += f"; suggested label <b>{html.escape(str(row['suggested_label']))}</b>"
    if row["conflict"]:
        note += "; <b>different labels</b>"
    css = "finding conflict" if row["conflict"] else "finding"
    pair = f"<div class='pair'>{''.join(cells)}</div>"
    return f"<div class='{css}'>{pair}<p>{note}</p></div>"


def _given(value) -> bool:
    return value is not None and value == value  # None and NaN are "not given"


class _Thumbnails:
    """Each image read once, shrunk and inlined as a data URL."""

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
            image = image.convert("RGB")
            image.thumbnail((THUMBNAIL, THUMBNAIL))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=80)
    except (OSError, ValueError):
        return ""  # an unreadable image is named in the caption
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
