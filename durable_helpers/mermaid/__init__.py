"""Mermaid pictures of one orchestration's history: a sequence diagram and a Gantt chart.

Frames in (docs/frames.md), Mermaid text out; no I/O besides `MermaidDiagram.save`. JupyterLab
4.1 and later renders the ``mermaid`` fence of the Markdown output natively, so a
`MermaidDiagram` displays itself as a picture; `.text` is the diagram source.

**Escaping.** Every name and payload goes into the text through `escape`, which keeps letters,
digits, spaces and ``_ . ( ) / @ + = ! ? * [ ] ~ $ '`` and writes every other character as a
Mermaid entity code (``#59;`` for ``;``); whitespace runs (newlines too) become one space. So no
value can start a new statement, an arrow, a comment (``%%``), a directive or HTML: the
structure of the diagram depends only on the history's event types, never on its strings.

**Large histories.** A sequence diagram shows at most ``max_messages`` messages (default 150).
Over that, runs of consecutive messages of the same kind between the same two participants (the
100 calls of a fan-out, then their 100 results) are folded into one message that says how many
(and, for results, how many failed and the range of durations). If that is still too many, the
first messages and the last ten are kept, with a note in between saying how many were left out
(`analysis.calls` or `gantt` show them all). A Gantt chart shows one bar per call up to
``max_bars`` (default 60); over that, one bar per call name spanning its first to its last call,
labelled with the count.

Example:
    >>> from durable_helpers import plots
    >>> plots.sequence(hub.history("abc")).save("abc.md")               # doctest: +SKIP
    >>> escape("a;b")
    'a#59;b'
"""

from durable_helpers.mermaid.gantt import gantt
from durable_helpers.mermaid.sequence import sequence
from durable_helpers.mermaid.text import MermaidDiagram, escape, format_duration

__all__ = ["MermaidDiagram", "escape", "format_duration", "gantt", "sequence"]
