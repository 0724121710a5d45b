"""`stackkit ingest`: upload files into a vector store, with a progress bar."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stackkit.errors import StackkitError


def _store_id(client: Any, store: str) -> str:
    if store.startswith("vs_"):
        return str(client.vector_stores.retrieve(store).id)
    for existing in client.vector_stores.list(limit=100).data:
        if existing.name == store:
            return str(existing.id)
    return str(client.vector_stores.create(name=store).id)


def ingest(client: Any, store: str, paths: list[Path], console: Console, timeout_s: float = 3600) -> int:
    """Upload `paths`, add them to `store` (an id, or a name: created if new) as one batch, and wait.
    Returns the number of files that failed."""
    for path in paths:
        if not path.is_file():
            raise StackkitError(f"No such file: {path}; check the path")
    store_id = _store_id(client, store)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        uploading = progress.add_task("uploading", total=len(paths))
        file_ids = []
        for path in paths:
            file_ids.append(client.files.create(file=(path.name, path.read_bytes()), purpose="assistants").id)
            progress.advance(uploading)
        batch = client.vector_stores.file_batches.create(store_id, file_ids=file_ids)
        indexing = progress.add_task("indexing", total=len(paths))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store_id)
            done = batch.file_counts.completed + batch.file_counts.failed + batch.file_counts.cancelled
            progress.update(indexing, completed=done)
            if batch.status != "in_progress":
                break
            time.sleep(0.2)
    failed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store_id, filter="failed").data
    for f in failed:
        console.print(f"[red]failed[/] {f.id}: {f.last_error.message if f.last_error else 'unknown error'}")
    console.print(f"vector store {store_id}: {batch.file_counts.completed} indexed, {len(failed)} failed")
    return len(failed)
