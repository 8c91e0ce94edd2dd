"""Where the sidecar's journal segments live: append blobs in Azurite, or files on local disk.

The journal (:class:`~.journal.Journal`) writes one segment at a time and asks a segment store
for six things: the names of its segments, read one, create one, append to it, put a whole
record beside it, delete one. Two stores do that:

- :class:`BlobSegments`: append blobs in the hub's ``{h}-sidecar`` container. Everything lives in
  the storage account; each append is an HTTP request to Azurite (about 4 ms here, and CPU of
  Azurite's one thread).
- :class:`FileSegments`: files in a local folder, each append one ``write`` and one ``fsync``
  (about 0.3 ms here). An acknowledged call survives ``kill -9`` of the sidecar (and a crash of
  the machine, since the data is synced). The folder belongs to one task hub in one storage account:
  :func:`file_segments` checks that with a token kept in both (``home`` in the folder,
  ``journal-home`` in the container), so a folder is never replayed into a storage account that
  was reset or that another folder took over; such a folder's segments are set aside in
  ``stale-{time}/``, not replayed (the newest :data:`KEEP_STALE` are kept, for a look).

Example:
    >>> store = FileSegments(tmp_path)  # doctest: +SKIP
    >>> store.create("journal-1.log")  # doctest: +SKIP
    >>> store.append("journal-1.log", b"{}\\n")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Protocol

from durable_helpers.local.sidecar.rest import RestStorage

log = logging.getLogger("durable_helpers.local.sidecar")

#: The blob in the journal container naming the folder that holds the hub's journal.
HOME_BLOB = "journal-home"
HOME_FILE = "home"
#: Folders of set-aside segments kept per hub (each reset of an in-memory Azurite adds one).
KEEP_STALE = 3


class SegmentStore(Protocol):
    """What the journal needs of the place its segments are kept.

    ``linger``: seconds a group commit waits for concurrent records to join it; worth it where
    an append is a slow request (a blob), not where it is a local write.
    """

    linger: float

    def names(self, prefix: str) -> list[str]: ...
    def read(self, name: str) -> bytes | None: ...
    def create(self, name: str) -> None: ...
    def append(self, name: str, data: bytes) -> None: ...
    def put(self, name: str, data: bytes) -> None: ...
    def delete(self, name: str) -> None: ...


class BlobSegments:
    """Segments as append blobs in ``container`` (one append block per group commit).

    Example:
        >>> BlobSegments(rest, "myhub-sidecar").names("journal-")  # doctest: +SKIP
        ['journal-0000000003.log']
    """

    #: An append block is a request of a few ms (and Azurite's CPU): let concurrent commits share.
    linger = 0.002

    def __init__(self, rest: RestStorage, container: str) -> None:
        self.rest = rest
        self.container = container

    def __repr__(self) -> str:
        return f"blob container {self.container!r}"

    def names(self, prefix: str) -> list[str]:
        return self.rest.list_blobs(self.container, prefix)

    def read(self, name: str) -> bytes | None:
        return self.rest.get_blob(self.container, name)

    def create(self, name: str) -> None:
        self.rest.create_append_blob(self.container, name)

    def append(self, name: str, data: bytes) -> None:
        self.rest.append_block(self.container, name, data)

    def put(self, name: str, data: bytes) -> None:
        self.rest.put_blob(self.container, name, data)

    def delete(self, name: str) -> None:
        self.rest.delete_blob(self.container, name)


class FileSegments:
    """Segments as files in ``folder``; every append is written and synced before it returns.

    Example:
        >>> store = FileSegments(Path("/tmp/journal"))  # doctest: +SKIP
        >>> store.names("journal-")  # doctest: +SKIP
        []
    """

    #: A local write and sync take a fraction of a ms: records queued meanwhile join the next
    #: append anyway, so lingering would only add to every completion's latency.
    linger = 0.0

    def __init__(self, folder: Path, *, sync: bool = True) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sync = sync
        self._open: dict[str, int] = {}  # name -> fd of the segment being appended to
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"folder {str(self.folder)!r}"

    def names(self, prefix: str) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if p.name.startswith(prefix))

    def read(self, name: str) -> bytes | None:
        try:
            return (self.folder / name).read_bytes()
        except FileNotFoundError:
            return None

    def _sync_folder(self) -> None:
        if self.sync:
            fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def create(self, name: str) -> None:
        self._close(name)
        (self.folder / name).write_bytes(b"")
        self._sync_folder()

    def append(self, name: str, data: bytes) -> None:
        with self._lock:
            fd = self._open.get(name)
            if fd is None:
                fd = os.open(self.folder / name, os.O_WRONLY | os.O_APPEND)
                self._open[name] = fd
        view = memoryview(data)
        while view:  # os.write may write less than it was given
            view = view[os.write(fd, view) :]
        if self.sync:
            os.fdatasync(fd)

    def put(self, name: str, data: bytes) -> None:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            if self.sync:
                os.fsync(out.fileno())
        os.replace(temporary, path)
        self._sync_folder()

    def delete(self, name: str) -> None:
        self._close(name)
        with contextlib.suppress(FileNotFoundError):
            (self.folder / name).unlink()

    def _close(self, name: str) -> None:
        with self._lock:
            fd = self._open.pop(name, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """Close the files still open for appending."""
        for name in list(self._open):
            self._close(name)


def file_segments(folder: Path, rest: RestStorage, container: str) -> FileSegments:
    """The journal folder of one hub, checked against the storage account it journals.

    A folder whose token does not match the container's (the storage account was reset, or
    another folder journals this hub now) has its segments moved to ``stale-{time}/`` with a
    warning; then the folder and the container get a new shared token.

    Example:
        >>> file_segments(Path("journal/myhub"), rest, "myhub-sidecar")  # doctest: +SKIP
    """
    store = FileSegments(folder)
    home = store.folder / HOME_FILE
    ours = home.read_text().strip() if home.exists() else None
    if ours is not None and ours == (journal_home(rest, container) or {}).get("token"):
        return store
    leftovers = store.names("journal-") + store.names("records")
    if leftovers:
        aside = _set_aside(store, leftovers)
        log.warning(
            "journal folder %s does not belong to the hub's storage as it is now (was the "
            "storage reset?): its %d segment(s) are set aside in %s, not replayed",
            store.folder,
            len(leftovers),
            aside,
        )
    token = uuid.uuid4().hex
    marker = {"token": token, "folder": str(store.folder.resolve())}
    rest.put_blob(container, HOME_BLOB, json.dumps(marker).encode(), "application/json")
    home.write_text(token + "\n")
    return store


def _set_aside(store: FileSegments, names: list[str]) -> Path:
    """Move ``names`` into a new ``stale-{time}`` folder; keep the newest :data:`KEEP_STALE`."""
    ns = time.time_ns()
    while True:  # names sort in time order, to the nanosecond (UTC)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}"
        aside = store.folder / f"stale-{stamp}"
        if not aside.exists():
            break
        ns += 1
    aside.mkdir()
    for name in names:
        os.replace(store.folder / name, aside / name)
    stale = sorted(p for p in store.folder.glob("stale-*") if p.is_dir())
    for old in stale[:-KEEP_STALE]:
        shutil.rmtree(old, ignore_errors=True)
        log.info("removed the oldest stale journal segments, %s", old)
    return aside


def journal_home(rest: RestStorage, container: str) -> dict[str, str] | None:
    """The container's note of the folder journaling this hub (``token``, ``folder``), or None
    when its journal is in the container itself.

    Example:
        >>> journal_home(rest, "myhub-sidecar")  # doctest: +SKIP
        {'token': '5f0c...', 'folder': '/home/me/.local-taskhub/journal/myhub'}
    """
    data = rest.get_blob(container, HOME_BLOB)
    if not data:
        return None
    try:
        marker = json.loads(data)
    except ValueError:
        return None
    return marker if isinstance(marker, dict) else None


def check_no_file_journal(rest: RestStorage, container: str) -> None:
    """For a sidecar journaling in the container: fail when the hub's journal is in a folder
    that still holds segments (their work would be lost), forget a folder that is gone.

    Example:
        >>> check_no_file_journal(rest, "myhub-sidecar")  # doctest: +SKIP
    """
    marker = journal_home(rest, container)
    if marker is None:
        return
    folder = Path(marker.get("folder", ""))
    if folder.is_dir() and any(p.name.startswith("journal-") for p in folder.iterdir()):
        raise RuntimeError(
            f"this hub's journal is in the folder {folder} (work acknowledged there would be "
            f"lost): start the sidecar with --journal-dir {folder.parent} (LocalTaskHub("
            "journal_dir=...)), or delete that folder if its work is not wanted"
        )
    log.warning("the hub's journal folder %s is gone; journaling in the container again", folder)
    rest.delete_blob(container, HOME_BLOB)
