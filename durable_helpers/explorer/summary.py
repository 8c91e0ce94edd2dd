"""HTML fragments of the explorer: status badges, times, payload previews, the Summary tab.

Every value is escaped with `html.escape` before it goes into HTML (the widgets show HTML as
it is). No widgets and no I/O here.

Example:
    >>> esc("<b>")
    '&lt;b&gt;'
"""

from __future__ import annotations

import html
import json
from typing import Any

import pandas as pd

from durable_helpers.explorer.model import Selection
from durable_helpers.mermaid import format_duration
from durable_helpers.plots import STATUS_COLORS


def esc(value: Any) -> str:
    """``value`` as HTML text (None -> "").

    Example:
        >>> esc(None), esc("a & b")
        ('', 'a &amp; b')
    """
    return html.escape("" if value is None else str(value))


def utc_time(value: Any) -> str:
    """A UTC timestamp as ``YYYY-MM-DD HH:MM:SS`` ("" for NaT/None).

    Example:
        >>> utc_time(pd.Timestamp("2026-12-01T10:00:05Z"))
        '2026-12-01 10:00:05'
    """
    if value is None or pd.isna(value):
        return ""
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def status_badge(status: Any) -> str:
    """A runtime status as a coloured badge (the colours of `plots.STATUS_COLORS`).

    Example:
        >>> "Completed</span>" in status_badge("Completed")
        True
    """
    color = STATUS_COLORS.get(str(status), "#555")
    return (
        f'<span style="color:white;background:{color};border-radius:3px;'
        f'padding:1px 6px;font-size:90%">{esc(status)}</span>'
    )


def preview(value: Any, limit: int = 2000) -> str:
    """A decoded payload as escaped, wrapped ``<pre>`` text, cut after ``limit`` characters.

    Example:
        >>> preview({"a": "<b>"}, limit=100).count("&lt;b&gt;")
        1
    """
    if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)):
        return "<i>none</i>"
    text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
    if len(text) > limit:
        text = text[:limit] + f"… ({len(text) - limit} more characters)"
    return f'<pre style="margin:0;white-space:pre-wrap">{esc(text)}</pre>'


def summary_html(sel: Selection) -> str:
    """The Summary tab: status, times, payloads, the failure with its stack trace (escaped).

    Example:
        >>> "<table>" in summary_html(Selection("abc", None, pd.DataFrame()))
        True
    """
    completed = sel.value("CompletedTime")
    rows = [
        ("Status", status_badge(sel.value("RuntimeStatus"))),
        ("Name", esc(sel.value("Name"))),
        ("Instance id", f"<code>{esc(sel.instance_id)}</code>"),
        ("Execution id", esc(sel.value("ExecutionId"))),
        ("Created", esc(utc_time(sel.value("CreatedTime"))) + " UTC"),
        ("Last updated", esc(utc_time(sel.value("LastUpdatedTime"))) + " UTC"),
        ("Completed", esc(utc_time(completed) + " UTC" if completed is not None else "not yet")),
        ("Duration", esc(format_duration(sel.value("Duration")) or "running")),
        ("Input", preview(sel.value("Input"))),
        ("Output", preview(sel.value("Output"))),
        ("Custom status", preview(sel.value("CustomStatus"))),
    ]
    body = "".join(
        f"<tr><th style='text-align:left;vertical-align:top;padding-right:12px'>{k}</th>"
        f"<td style='text-align:left'>{v}</td></tr>"
        for k, v in rows
    )
    out = f"<table>{body}</table>"
    failure = sel.failure()
    if failure:
        parts = [f"<b>{esc(failure['type'] or 'Failed')}</b>: {esc(failure['message'])}"]
        call = failure.get("call")
        if call:
            parts.append(
                f"first failed call: {esc(call['kind'])} <code>{esc(call['name'])}</code>"
                f" · {esc(call['type'])}: {esc(call['message'])}"
            )
        if failure.get("stack"):
            parts.append(f"<pre class='dh-stack'>{esc(failure['stack'])}</pre>")
        out += (
            "<div class='dh-failure' style='border-left:3px solid #d62728;"
            "padding-left:8px;margin-top:8px'><b>Failure</b><br>" + "<br>".join(parts) + "</div>"
        )
    iid = repr(sel.instance_id)
    out += (
        "<p style='color:#666;margin-top:8px'>In code: "
        f"<code>hub.instance({esc(iid)})</code>, <code>hub.history({esc(iid)})</code>, "
        f"<code>plots.sequence(hub.history({esc(iid)}))</code></p>"
    )
    return out
