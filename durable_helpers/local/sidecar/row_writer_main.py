"""The row writer process (started by :class:`~.row_writes.RowWriterProcesses`, not by hand):
writes the rows it is sent on stdin and answers on stdout, until stdin ends."""

import contextlib
import sys

from durable_helpers.local.sidecar.row_writes import serve_child

if __name__ == "__main__":
    answers = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the answers
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the sidecar's children too
        serve_child(sys.stdin.buffer, answers)
