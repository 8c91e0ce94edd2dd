"""Mermaid text: escaping names and payloads, the diagram object, and small formatters.

Used by `sequence` and `gantt` in this package; no I/O besides `MermaidDiagram.save`.

Example:
    >>> escape("a;b")
    'a#59;b'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

_SAFE = frozenset(" _.()/@+=!?*[]~$'·…×")
_SPACES = re.compile(r"\s+")
#: Mermaid keywords that must not start a label (a participant alias, a section name).
_KEYWORDS = re.compile(
    r"^(end|alt|else|opt|loop|par|and|rect|critical|break|note|participant|actor|section|"
    r"title|activate|deactivate|autonumber|box|create|destroy|links?|properties|details)\b",
    re.IGNORECASE,
)


def escape(value: Any, limit: int | None = None) -> str:
    """``value`` as text that Mermaid shows as it is but cannot read as syntax.

    Whitespace (newlines too) is collapsed to single spaces; with ``limit`` the text is cut to
    that many characters (ending in ``…``) before escaping. Letters, digits, spaces and
    ``_.()/@+=!?*[]~$'`` are kept; anything else becomes an entity code ``#<code point>;``.

    Example:
        >>> escape('say "hi" --> %%{init}%%')
        'say #34;hi#34; #45;#45;#62; #37;#37;#123;init#125;#37;#37;'
        >>> escape("a\\nvery long name", limit=9)
        'a very l…'
    """
    text = _SPACES.sub(" ", "" if value is None else str(value)).strip()
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 1)] + "…"
    out = []
    for ch in text:
        if ch.isalnum() or ch in _SAFE:
            out.append(ch)
        elif ord(ch) < 32 or ord(ch) == 127:
            continue
        else:
            out.append(f"#{ord(ch)};")
    escaped = "".join(out)
    if _KEYWORDS.match(escaped):  # "end" alone would close a block: escape its first letter
        escaped = f"#{ord(escaped[0])};" + escaped[1:]
    return escaped


@dataclass(frozen=True)
class MermaidDiagram:
    """Mermaid source that displays itself in Jupyter (Markdown with a ``mermaid`` fence).

    Example:
        >>> d = MermaidDiagram("sequenceDiagram\\n    participant p0 as A")
        >>> d.markdown().splitlines()[0]
        '```mermaid'
    """

    text: str

    @property
    def kind(self) -> str:
        """The diagram type: ``sequenceDiagram`` or ``gantt``.

        Example:
            >>> MermaidDiagram("gantt\\n    title x").kind
            'gantt'
        """
        return self.text.split("\n", 1)[0].strip()

    def markdown(self) -> str:
        """The diagram as a Markdown ``mermaid`` code block.

        Example:
            >>> MermaidDiagram("gantt").markdown()
            '```mermaid\\ngantt\\n```'
        """
        return f"```mermaid\n{self.text}\n```"

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        lines = self.text.count("\n") + 1
        return f"<MermaidDiagram {self.kind}, {lines} lines; .text for the source>"

    def save(self, path: str | Path) -> Path:
        """Write the diagram to ``path``: ``.md`` as a Markdown block, ``.mmd`` as plain source.

        Example:
            >>> import tempfile, pathlib
            >>> folder = pathlib.Path(tempfile.mkdtemp())
            >>> MermaidDiagram("gantt").save(folder / "x.mmd").read_text()
            'gantt\\n'
        """
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix in (".md", ".markdown"):
            content = self.markdown()
        elif suffix in (".mmd", ".mermaid"):
            content = self.text
        else:
            raise ValueError(
                f"save() writes .md (Markdown with a mermaid block) or .mmd (Mermaid source), "
                f"not {target.suffix or 'a file without an extension'!r}: {target}"
            )
        target.write_text(content + "\n", encoding="utf-8")
        return target


# ------------------------------------------------------------------------------ formatting


def format_duration(value: Any) -> str:
    """A duration as '0.012 s', '14.5 s', '3 min 5 s' or '2 h 3 min'; '' when unknown.

    Example:
        >>> format_duration(pd.Timedelta(seconds=185)), format_duration(None)
        ('3 min 5 s', '')
    """
    if value is None or pd.isna(value):
        return ""
    s = pd.Timedelta(value).total_seconds()
    if s < 10:
        return f"{s:.3f} s"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def _clock(value: Any) -> str:
    if value is None or pd.isna(value):
        return "(time unknown)"
    return pd.Timestamp(value).strftime("%H:%M:%S.%f")[:-3] + " UTC"


def _payload(value: Any, limit: int) -> str:
    """A short JSON-ish preview of a decoded payload ('' for None)."""
    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return ""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        except (TypeError, ValueError):
            text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(value)


def _one_instance(history: pd.DataFrame, instance_id: str | None) -> pd.DataFrame:
    if "InstanceId" not in history or len(history) == 0:
        return history.reset_index(drop=True)
    ids = history["InstanceId"].astype("string").dropna().unique().tolist()
    if instance_id is not None:
        if instance_id not in ids:
            raise ValueError(f"instance {instance_id!r} is not in this history frame")
        return history[history["InstanceId"] == instance_id].reset_index(drop=True)
    if len(ids) > 1:
        shown = ", ".join(repr(i) for i in ids[:3]) + (", ..." if len(ids) > 3 else "")
        raise ValueError(
            f"the frame holds {len(ids)} instances ({shown}); a diagram shows one: pass "
            "instance_id=, or hub.history(id) for one instance"
        )
    return history.reset_index(drop=True)
