"""Episode-store writes that survive power loss: zarr's local store, with every file fsynced.

zarr's `LocalStore` writes each chunk and metadata file to a temporary file and renames it into
place, without fsync; after a power cut such a file can be empty even though its rename survived.
`DurableLocalStore` fsyncs each file before the rename and notes the directory the rename changed
(and the parents of directories it created) in `dirty`; `sync` fsyncs those. The episode store
writes its own shard and row files through `put` too, and calls `sync` before and after its
commit marker, so a committed episode is on disk once `append` returns.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from pathlib import Path

from zarr.core.buffer import Buffer
from zarr.storage import LocalStore

from robot_rl.fsync import fsync_dir


class DurableLocalStore(LocalStore):
    """A zarr v3 `LocalStore` whose writes are fsynced (see the module docstring)."""

    def __init__(self, root: Path | str, *, read_only: bool = False) -> None:
        super().__init__(root, read_only=read_only)
        self.dirty: set[Path] = set()
        self._lock = threading.Lock()  # zarr writes chunks from several threads at once

    async def _set(self, key: str, value: Buffer, exclusive: bool = False) -> None:
        if not self._is_open:
            await self._open()
        self._check_writable()
        await asyncio.to_thread(self.put, self.root / key, value.as_buffer_like(), exclusive)

    def set_sync(self, key: str, value: Buffer) -> None:
        self._ensure_open_sync()
        self._check_writable()
        self.put(self.root / key, value.as_buffer_like())

    def put(self, path: Path, payload: bytes | memoryview, exclusive: bool = False) -> None:
        """Write `path` whole: temporary file, fsync, rename (or link: `exclusive`, which leaves
        an existing file as it is); its directory is fsynced by the next `sync`."""
        self.make_dirs(path.parent)
        # the name zarr gives its temporary files, which a reopening writer deletes
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        try:
            with open(tmp, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            if exclusive:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    pass
                tmp.unlink()
            else:
                os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with self._lock:
            self.dirty.add(path.parent)

    def sync(self) -> None:
        """Fsync every directory changed since the last call: the renames are then durable."""
        with self._lock:
            dirty, self.dirty = self.dirty, set()
        # deepest first: a new directory's own entries are durable before its name is
        for directory in sorted(dirty, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(directory)

    def make_dirs(self, directory: Path) -> None:
        """Create `directory` and its missing parents; `sync` makes them durable."""
        created = []
        while not directory.exists():
            created.append(directory)
            directory = directory.parent
        if created:
            created[0].mkdir(parents=True, exist_ok=True)
            with self._lock:
                self.dirty.update(d.parent for d in created)
