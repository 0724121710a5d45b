"""Background responses: a turn that runs on after its caller has gone, and can be followed, resumed and cancelled.

A background run drains the turn's events into memory as they are made; any number of readers follow it
from a sequence number (the create call's own stream is one such reader, so dropping it stops nothing).
When the run ends, its events are written to the event log in one transaction, so
`GET /v1/responses/{id}?stream=true&starting_after=N` replays a finished run from storage, in this process
or after a restart. A run still going when the process stops is marked failed at the next start, with an
error that says so: nothing claims to be in progress that is not.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from stackkit.apis.agents import ResponseError, ResponseEvent, ResponseObject
from stackkit.core.sqlite import SqliteDB

log = logging.getLogger("stackkit.responses")
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS response_events (response_id TEXT NOT NULL, seq INTEGER NOT NULL, "
    "body TEXT NOT NULL, PRIMARY KEY (response_id, seq)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS background_runs (response_id TEXT PRIMARY KEY)",
]
TERMINAL = ("response.completed", "response.incomplete", "response.failed")
INTERRUPTED = "stackkit stopped while this background response was running; create it again"


class Run:
    """One background response in this process: its events so far and the response as they describe it."""

    def __init__(self, response: ResponseObject) -> None:
        self.events: list[ResponseEvent] = []
        self.snapshot = response
        self.done = False
        self.cancelling = False
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def add(self, event: ResponseEvent) -> None:
        self.events.append(event)
        extra = event.model_extra or {}
        if "response" in extra:
            self.snapshot = ResponseObject.model_validate(extra["response"])
        elif event.type == "response.output_item.done":
            self.snapshot = self.snapshot.model_copy(update={"output": [*self.snapshot.output, extra["item"]]})
        self._pulse()

    def finish(self) -> None:
        self.done = True
        self._pulse()

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self, after: int) -> AsyncIterator[ResponseEvent]:
        """The events after sequence number `after`, then each as it is made, until the run ends."""
        index = after + 1  # sequence numbers are list positions: they start at 0 and have no gaps
        while True:
            while index < len(self.events):
                yield self.events[index]
                index += 1
            if self.done:
                return
            await self._changed.wait()


class BackgroundRuns:
    """The background runs of one Responses service, and their event log in its store."""

    def __init__(self, db: SqliteDB) -> None:
        self.db = db
        self.runs: dict[str, Run] = {}
        db.run_sync(self._recover)

    @staticmethod
    def _recover(conn: Any) -> None:
        for statement in SCHEMA:
            conn.execute(statement)
        for (response_id,) in conn.execute("SELECT response_id FROM background_runs").fetchall():
            row = conn.execute("SELECT body FROM responses WHERE id = ?", (response_id,)).fetchone()
            if row is not None:
                failed = ResponseObject.model_validate_json(row[0]).model_copy(update={
                    "status": "failed", "error": ResponseError(code="server_error", message=INTERRUPTED)})
                conn.execute("UPDATE responses SET body = ? WHERE id = ?", (failed.model_dump_json(), response_id))
                seq = conn.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM response_events WHERE response_id = ?",
                                   (response_id,)).fetchone()[0]
                event = ResponseEvent(type="response.failed", sequence_number=seq, response=failed.model_dump())
                conn.execute("INSERT INTO response_events VALUES (?, ?, ?)",
                             (response_id, seq, event.model_dump_json()))
            conn.execute("DELETE FROM background_runs WHERE response_id = ?", (response_id,))
        conn.commit()

    async def register(self, response_id: str) -> None:
        """Record that a run starts (with the response row already written), so a restart can see it."""
        await self.db.execute("INSERT OR REPLACE INTO background_runs VALUES (?)", (response_id,))

    def start(self, response: ResponseObject, events: AsyncIterator[ResponseEvent],
              on_cancel: Callable[[ResponseObject], Awaitable[None]]) -> Run:
        run = Run(response)
        self.runs[response.id] = run
        run.task = asyncio.get_running_loop().create_task(self._drive(run, events, on_cancel))
        return run

    async def _drive(self, run: Run, events: AsyncIterator[ResponseEvent],
                     on_cancel: Callable[[ResponseObject], Awaitable[None]]) -> None:
        try:
            async for event in events:
                run.add(event)
        except asyncio.CancelledError:
            await self._stop(run, events, on_cancel, INTERRUPTED)
            if not run.cancelling:
                raise  # shutdown
        except Exception:
            log.exception("background response %s failed", run.snapshot.id)
            await self._stop(run, events, on_cancel, "the response failed inside stackkit; its log says why")
        finally:
            try:
                await asyncio.shield(self._persist(run))
            finally:
                run.finish()
                self.runs.pop(run.snapshot.id, None)

    @staticmethod
    async def _stop(run: Run, events: AsyncIterator[ResponseEvent],
                    on_cancel: Callable[[ResponseObject], Awaitable[None]], message: str) -> None:
        """End a run that did not reach its terminal event: cancelled by the user, or failed (with an event)."""
        await events.aclose()  # type: ignore[attr-defined]
        if run.cancelling:  # OpenAI has no cancelled event: followers' streams just end
            run.snapshot = run.snapshot.model_copy(update={"status": "cancelled"})
        else:
            failed = run.snapshot.model_copy(update={"status": "failed", "error": ResponseError(
                code="server_error", message=message)})
            run.add(ResponseEvent(type="response.failed", sequence_number=len(run.events),
                                  response=failed.model_dump()))
        await asyncio.shield(on_cancel(run.snapshot))

    async def _persist(self, run: Run) -> None:
        rows = [(run.snapshot.id, e.sequence_number, e.model_dump_json()) for e in run.events]

        def write(conn: Any) -> None:
            conn.executemany("INSERT OR REPLACE INTO response_events VALUES (?, ?, ?)", rows)
            if run.snapshot.status != "in_progress":  # a run stopped by shutdown stays listed for recovery
                conn.execute("DELETE FROM background_runs WHERE response_id = ?", (run.snapshot.id,))
            conn.commit()

        await self.db.run(write)

    async def cancel(self, response_id: str) -> ResponseObject | None:
        """Cancel a run of this process; None when there is none (it ended, or never ran here)."""
        run = self.runs.get(response_id)
        if run is None or run.task is None:
            return None
        run.cancelling = True
        run.task.cancel()
        await asyncio.wait([run.task])
        return run.snapshot

    async def replay(self, response_id: str, after: int) -> AsyncIterator[ResponseEvent]:
        rows = await self.db.execute("SELECT body FROM response_events WHERE response_id = ? AND seq > ? "
                                     "ORDER BY seq", (response_id, after))
        for (body,) in rows:
            yield ResponseEvent.model_validate(json.loads(body))

    async def shutdown(self) -> None:
        for run in list(self.runs.values()):
            if run.task is not None:
                run.task.cancel()
        await asyncio.gather(*(r.task for r in list(self.runs.values()) if r.task), return_exceptions=True)
