"""A worker id that survives a restart of the worker's process.

The service hands a worker its active trials again when the same id asks for a suggestion, so a
worker killed mid-trial and started again (by a cluster scheduler, say) resumes that trial instead
of leaving it to expire. The id lives in a file under the work directory, one per worker name and
host; an exclusive lock on the file, held while the worker runs, keeps two live processes from
sharing an id. Unnamed workers take the first free slot `w0`, `w1`, ... so that a restarted one
finds its old slot free again.

Example:
    with WorkerIdentity.acquire(Path("runs")) as identity:
        Worker(client, "demo", train, evaluate, worker_id=identity.worker_id)
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_SLOTS = 1024


class IdentityInUse(RuntimeError):
    """Another live process holds the worker name asked for."""


@dataclass
class WorkerIdentity:
    """`name` is short for logs ("w0", or the name given); `worker_id` is what the service sees."""

    name: str
    worker_id: str
    path: Path
    _handle: IO[str]

    @classmethod
    def acquire(cls, workdir: Path, name: str | None = None) -> WorkerIdentity:
        """Takes the identity `name` (or the first free slot) under `workdir`, creating its id
        on first use. Raises IdentityInUse when `name` is held by a live process, ValueError for
        a name that is not a plain file name."""
        if name is not None and not NAME.match(name):
            raise ValueError(f"worker name {name!r}: use letters, digits, '.', '_', '-' (at most 64)")
        host = socket.gethostname()
        folder = Path(workdir) / ".pbt-workers" / host
        folder.mkdir(parents=True, exist_ok=True)
        candidates = [name] if name is not None else [f"w{i}" for i in range(MAX_SLOTS)]
        for candidate in candidates:
            identity = cls._try(folder / f"{candidate}.id", candidate, host)
            if identity is not None:
                return identity
        if name is not None:
            raise IdentityInUse(f"another worker process named {name!r} is running in {workdir} on {host}")
        raise IdentityInUse(f"all {MAX_SLOTS} worker slots in {folder} are taken")

    @classmethod
    def _try(cls, path: Path, name: str, host: str) -> WorkerIdentity | None:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open to hold the lock
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        handle.seek(0)
        worker_id = handle.read().strip()
        if not worker_id:
            worker_id = f"{host}-{name}-{uuid.uuid4().hex[:8]}"
            handle.write(worker_id + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return cls(name, worker_id, path, handle)

    def release(self) -> None:
        """Frees the name for the next process (the id stays in the file for it)."""
        if not self._handle.closed:
            self._handle.close()

    def __enter__(self) -> WorkerIdentity:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
