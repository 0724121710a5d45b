"""Background responses: a turn that runs on after its caller has gone, and can be followed, resumed and cancelled.

A background run drains the turn's events into memory as they are made; any number of readers follow it
from a sequence number (the create call's own stream is one such reader, so dropping it stops nothing).
When the run ends, its events are written to the event log in one transaction, so
`GET /v1/responses/{id}?stream=true&starting_after=N` replays a finished run from storage, in this process
or after a restart. A run still going when its process stops is marked failed at the next start of any
replica (once its process has stopped beating for 30 s), with an error that says so: nothing claims to be in
progress that is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy import Column, Connection, Float, Integer, MetaData, String, Table, Text, func, select
from sqlalchemy.exc import IntegrityError

from stackkit.apis.agents import ResponseError, ResponseEvent, ResponseObject
from stackkit.core.sql import SqlStore

log = logging.getLogger("stackkit.responses")
TABLES = MetaData()
EVENTS = Table("response_events", TABLES, Column("response_id", String, primary_key=True),
               Column("seq", Integer, primary_key=True, autoincrement=False), Column("body", Text, nullable=False))
# a run in progress, and the process running it: a replica that starts fails only its own dead runs' rows
RUNS = Table("background_runs", TABLES, Column("response_id", String, primary_key=True),
             Column("runner", String, nullable=False, server_default=""))
HEARTBEATS = Table("background_runners", TABLES, Column("runner", String, primary_key=True),
                   Column("beat", Float, nullable=False))
STALE_S = 30.0
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

    def __init__(self, db: SqlStore, responses: Table) -> None:
        self.db = db
        self.responses = responses
        self.runs: dict[str, Run] = {}
        self.runner = uuid.uuid4().hex
        self._beating: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Fail the runs no live process is running, then keep beating (and sweeping) in the background."""
        await self._beat()
        await self._sweep()
        self._beating = asyncio.get_running_loop().create_task(self._beat_forever(), name="background-heartbeat")

    async def _beat(self) -> None:
        await self.db.put(HEARTBEATS, {"runner": self.runner, "beat": time.time()}, ["runner"])

    async def _sweep(self) -> None:
        """Fail the runs of processes that stopped: any but this one's on a private store, those whose
        runner has not beaten for STALE_S on a store replicas share."""
        alive = [self.runner]
        if self.db.shared:
            beating = select(HEARTBEATS.c.runner).where(HEARTBEATS.c.beat > time.time() - STALE_S)
            alive = [r for (r,) in await self.db.fetch(beating)]
        for (response_id,) in await self.db.fetch(select(RUNS.c.response_id).where(RUNS.c.runner.not_in(alive))):
            with contextlib.suppress(IntegrityError):  # another replica failed it first
                await self._fail_interrupted(response_id)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(STALE_S / 3)
            try:
                await self._beat()
                if self.db.shared:
                    await self._sweep()
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not stop the beat
                log.warning("background heartbeat failed: %s", exc)

    async def _fail_interrupted(self, response_id: str) -> None:
        responses = self.responses

        def fail(conn: Connection) -> None:
            row = conn.execute(select(responses.c.body).where(responses.c.id == response_id)).first()
            if row is not None:
                failed = ResponseObject.model_validate_json(row[0]).model_copy(update={
                    "status": "failed", "error": ResponseError(code="server_error", message=INTERRUPTED)})
                conn.execute(responses.update().where(responses.c.id == response_id)
                             .values(body=failed.model_dump_json()))
                seq = conn.execute(select(func.coalesce(func.max(EVENTS.c.seq) + 1, 0))
                                   .where(EVENTS.c.response_id == response_id)).scalar_one()
                event = ResponseEvent(type="response.failed", sequence_number=seq, response=failed.model_dump())
                conn.execute(EVENTS.insert().values(response_id=response_id, seq=seq, body=event.model_dump_json()))
            conn.execute(RUNS.delete().where(RUNS.c.response_id == response_id))

        await self.db.run(fail)

    async def register(self, response_id: str) -> None:
        """Record that a run starts (with the response row already written), so a restart can see it."""
        await self.db.put(RUNS, {"response_id": response_id, "runner": self.runner}, ["response_id"])

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
        rows = [{"response_id": run.snapshot.id, "seq": e.sequence_number, "body": e.model_dump_json()}
                for e in run.events]

        def write(conn: Connection) -> None:
            conn.execute(EVENTS.delete().where(EVENTS.c.response_id == run.snapshot.id))
            if rows:
                conn.execute(EVENTS.insert(), rows)
            if run.snapshot.status != "in_progress":  # a run stopped by shutdown stays listed for recovery
                conn.execute(RUNS.delete().where(RUNS.c.response_id == run.snapshot.id))

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
        rows = await self.db.fetch(select(EVENTS.c.body).where(EVENTS.c.response_id == response_id,
                                                                EVENTS.c.seq > after).order_by(EVENTS.c.seq))
        for (body,) in rows:
            yield ResponseEvent.model_validate(json.loads(body))

    async def shutdown(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
        for run in list(self.runs.values()):
            if run.task is not None:
                run.task.cancel()
        await asyncio.gather(*(r.task for r in list(self.runs.values()) if r.task), return_exceptions=True)
