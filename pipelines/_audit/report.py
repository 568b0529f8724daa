"""The audit as a page a person would rather read: one self-contained HTML file,
thumbnails inlined, each finding with what to do about it."""

from __future__ import annotations

import html

from pipelines._pages import Thumbnails, page_html, write_page

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
.finding{display:inline-block;margin:6px;padding:6px;border:1px solid #ddd;
width:340px;vertical-align:top}.finding img{width:160px;height:160px;
object-fit:contain;background:#eee}.conflict{border-color:#c00}
.pair{display:flex;gap:8px}.pair>div{width:160px;overflow-wrap:anywhere}
.advice{background:#f7f7e8;padding:8px;border-left:4px solid #cc6}
"""


def write_report(audit, path) -> None:
    """Write ``audit`` (an :class:`Audit`) as one self-contained HTML page."""
    write_page(path, render(audit))


def render(audit) -> str:
    """The audit's page as HTML."""
    findings = audit.findings
    parts = [
        "<h1>Can I trust this score? An audit</h1>",
        f"<p>{html.escape(audit.summary())}.</p>",
        f"<p><small>Near duplicates: {html.escape(audit.near_rule())}. Label "
        f"issues: confident learning (cleanlab) on out-of-fold probabilities of a "
        f"logistic regression on the embeddings{_strength(audit)}.</small></p>",
        _counts(audit),
    ]
    thumbnails = Thumbnails()
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
    return page_html("featurize audit", "\n".join(parts), _STYLE)


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
