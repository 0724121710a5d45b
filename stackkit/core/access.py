"""Who may reach which resource: ownership and access policies, for every route, generically.

On when run.yaml has ``server.auth`` or an ``access_policy``. Every resource a principal creates (a model
or shield registered at run time, a vector store, a file, a response, a conversation, a stored chat
completion, an arena vote) records its owner. Each operation is checked from the route table alone: the
resource its path names (``{vector_store_id}``, ``{response_id}``, ...), the resources its body refers to
(``previous_response_id``, ``conversation``, ``file_id(s)``, ``vector_store_id(s)``, ``model``, ...), and the
items a list returns. The policy's rules are tried in order, the first that matches decides; with none
matching, a principal reaches what it owns, what its team owns (the ``team`` attribute), and what nobody
owns (declared in run.yaml, or made before auth was on).

A denied request is indistinguishable from one naming a resource that does not exist: for the resource a
path names, the operation is run on an id that does not exist and its own not-found error is returned with
the real id put back; a reference in a body is checked, whether it exists or not, through the resource's
own getter, so both cases answer the getter's not-found error. Lists leave out what the caller may not read,
and fetch on so that a page is still full.
"""

from __future__ import annotations

import fnmatch
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, MetaData, String, Table, Text, select

from stackkit.apis.datatypes import Api, Route
from stackkit.core.config import AccessRule
from stackkit.core.request_context import Principal, current_principal
from stackkit.core.sql import SqlStore
from stackkit.core.streams import Stream, aclose
from stackkit.errors import NotFoundError, StackkitError

# the path parameter naming a resource, by API -> its kind
PATH_KINDS = {"model_id": "model", "identifier": "shield", "vector_store_id": "vector_store", "file_id": "file",
              "response_id": "response", "conversation_id": "conversation", "completion_id": "chat_completion"}
CREATES = {"register_model": "model", "register_shield": "shield", "create_vector_store": "vector_store",
           "upload_file": "file", "create_response": "response", "create_conversation": "conversation",
           "chat_completion": "chat_completion", "create_vote": "vote"}
LISTS = {"list_models": "model", "list_shields": "shield", "list_vector_stores": "vector_store",
         "list_files": "file", "list_stored_completions": "chat_completion", "list_votes": "vote"}
WRITES_BODY_TARGET = {"insert_chunks"}  # the store named in the body is written to, not only read
READS = {"search_vector_store", "query_chunks"}  # POSTs that only read
# body fields naming other resources (anywhere in the body) -> their kind
REFERENCES = {"vector_store_id": "vector_store", "vector_store_ids": "vector_store", "file_id": "file",
              "file_ids": "file", "previous_response_id": "response", "conversation": "conversation",
              "model": "model", "shield_id": "shield", "guardrails": "shield"}
GETTERS = {"model": (Api.models, "get_model", "model_id"), "shield": (Api.shields, "get_shield", "identifier"),
           "vector_store": (Api.vector_io, "get_vector_store", "vector_store_id"),
           "file": (Api.files, "get_file", "file_id"), "response": (Api.agents, "get_response", "response_id"),
           "conversation": (Api.agents, "get_conversation", "conversation_id")}
UNOWNED_TTL_S = 1.0
TABLES = MetaData()
OWNERS = Table("owners", TABLES, Column("kind", String, primary_key=True), Column("id", String, primary_key=True),
               Column("owner", Text, nullable=False))


def _path_kind(route: Route) -> tuple[str, str] | None:
    for param in route.path_params[:1]:
        kind = PATH_KINDS.get(param)
        if kind == "file" and route.api is not Api.files:
            return None
        if kind is not None and (param != "identifier" or route.api is Api.shields):
            return param, kind
    return None


def _action(route: Route) -> str:
    if route.name in READS or route.method == "GET":
        return "read"
    if route.method == "DELETE":
        return "delete"
    return "update" if route.path_params else "create"


def _references(data: Any, out: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(kind, id) of every resource the body names."""
    if isinstance(data, dict):
        for key, value in data.items():
            kind = REFERENCES.get(key)
            if kind is not None:
                ids = value if isinstance(value, list) else [value]
                if key == "conversation" and isinstance(value, dict):
                    ids = [value.get("id")]
                out += [(kind, i) for i in ids if isinstance(i, str) and i]
            elif isinstance(value, dict | list):
                _references(value, out)
    elif isinstance(data, list):
        for value in data:
            _references(value, out)
    return out


def _swap(data: Any, old: str, new: str) -> Any:
    if isinstance(data, str):
        return new if data == old else data
    if isinstance(data, dict):
        return {k: _swap(v, old, new) for k, v in data.items()}
    if isinstance(data, list):
        return [_swap(v, old, new) for v in data]
    return data


def _missing_like(exc: NotFoundError, fake: str, real: str) -> NotFoundError:
    return NotFoundError(exc.message.replace(fake, real), code=exc.code, param=exc.param)


def _shares(principal: Principal, owner: dict[str, Any], attribute: str) -> bool:
    mine, theirs = principal.attributes.get(attribute), owner.get("attributes", {}).get(attribute)
    return bool(_as_set(mine) & _as_set(theirs))


def _as_set(value: Any) -> set[Any]:
    return set(value) if isinstance(value, list) else {value} if value is not None else set()


class AccessControl:
    """Ownership records (a SQL table; owners found are cached, as they never change) and the policy that
    reads them. Call `open()` before use."""

    def __init__(self, db: SqlStore, rules: list[AccessRule], impls: dict[Api, Any], routes: list[Route]) -> None:
        self.db = db
        self.rules = rules
        self.impls = impls
        self.getters = {(r.api, r.name): r for r in routes}
        self._owners: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._unowned_until: dict[tuple[str, str], float] = {}  # "no owner" answers, trusted until then

    async def open(self) -> None:
        await self.db.create(TABLES)

    # ---- ownership ----------------------------------------------------------------------------

    async def owner(self, kind: str, rid: str) -> dict[str, Any] | None:
        """Who owns a resource (None: nobody). Owners never change, so they are cached; "nobody" is cached
        too, for good on a private store (only this process records owners) and for a second on one that
        replicas share (another may record an owner for that id at any time)."""
        key = (kind, rid)
        if key in self._owners:
            return self._owners[key]
        if self._unowned_until.get(key, 0.0) > time.monotonic():
            return None
        rows = await self.db.fetch(select(OWNERS.c.owner).where(OWNERS.c.kind == kind, OWNERS.c.id == rid))
        if rows:
            self._owners[key] = json.loads(rows[0][0])
            return self._owners[key]
        if not self.db.shared:
            self._owners[key] = None
        else:
            if len(self._unowned_until) > 100_000:
                self._unowned_until.clear()
            self._unowned_until[key] = time.monotonic() + UNOWNED_TTL_S
        return None

    async def own(self, kind: str, rid: str, principal: Principal) -> None:
        owner = {"principal": principal.name, "attributes": principal.attributes}
        self._unowned_until.pop((kind, rid), None)
        await self.db.put(OWNERS, {"kind": kind, "id": rid, "owner": json.dumps(owner)}, ["kind", "id"])
        self._owners[(kind, rid)] = owner

    async def disown(self, kind: str, rid: str) -> None:
        await self.db.execute(OWNERS.delete().where(OWNERS.c.kind == kind, OWNERS.c.id == rid))
        self._owners.pop((kind, rid), None)

    def _declared_model(self, rid: str) -> bool:
        models = self.impls.get(Api.models)
        table = getattr(models, "table", None)
        return table is not None and table.declared(rid)

    # ---- policy -------------------------------------------------------------------------------

    def decides(self, principal: Principal, action: str, kind: str, rid: str, owner: dict[str, Any] | None) -> bool:
        for rule in self.rules:
            scope = rule.permit or rule.forbid
            assert scope is not None
            if scope.principal not in (None, principal.name) or (scope.actions and action not in scope.actions):
                continue
            if scope.resource is not None and not fnmatch.fnmatchcase(f"{kind}::{rid}", scope.resource):
                continue
            if all(self._holds(c, principal, owner) for c in rule.when):
                return rule.permit is not None
        return owner is None or owner["principal"] == principal.name or _shares(principal, owner, "team")

    @staticmethod
    def _holds(condition: str, principal: Principal, owner: dict[str, Any] | None) -> bool:
        if condition == "resource is unowned":
            return owner is None
        if condition in ("user is owner", "user is not owner"):
            return (owner is not None and owner["principal"] == principal.name) == (condition == "user is owner")
        negated = condition.startswith("user not in")
        shared = owner is not None and _shares(principal, owner, condition.rsplit(" ", 1)[1])
        return shared != negated

    async def allows(self, principal: Principal, action: str, kind: str, rid: str) -> bool:
        return self.decides(principal, action, kind, rid, await self.owner(kind, rid))

    # ---- the guard around each operation ------------------------------------------------------

    def guard(self, route: Route, method: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
        """`method` checked against the policy (unchanged for calls without a principal: auth off)."""
        path = _path_kind(route)
        action = _action(route)
        creates = CREATES.get(route.name)
        lists = LISTS.get(route.name)

        async def guarded(request: BaseModel) -> Any:
            principal = current_principal.get()
            if principal is None:
                return await method(request)
            if path is not None:
                rid = getattr(request, path[0])
                if not await self.allows(principal, action, path[1], rid):
                    raise await self._as_missing(method, request, rid)
            if route.body == "json":
                body = request.model_dump(exclude_unset=True, exclude=set(route.path_params))
                for kind, rid in _references(body, []):
                    await self._check_reference(principal, kind, rid,
                                                "update" if route.name in WRITES_BODY_TARGET else "read")
            storing = creates is not None and (creates != "chat_completion" or
                                               (request.model_extra or {}).get("store") is True)
            result = await method(request)
            if lists is not None:
                return await self._readable(principal, lists, request, result, method)
            if storing and creates is not None:
                return await self._owned(creates, result, principal)
            if action == "delete" and path is not None and len(route.path_params) == 1:
                await self.disown(path[1], getattr(request, path[0]))
            return result

        return guarded

    async def _as_missing(self, method: Callable[[Any], Awaitable[Any]], request: BaseModel, rid: str
                          ) -> StackkitError:
        """The error the operation gives for an id that does not exist, with `rid` in it."""
        fake = _fake_like(rid)
        try:
            await method(type(request).model_validate(_swap(request.model_dump(), rid, fake)))
        except NotFoundError as exc:
            return _missing_like(exc, fake, rid)
        return NotFoundError(f"'{rid}' not found; list what you can use with the list endpoint.")

    async def _check_reference(self, principal: Principal, kind: str, rid: str, action: str) -> None:
        if kind == "model" and self._declared_model(rid):
            return  # run.yaml's models belong to nobody: no lookup on the hot path
        owner = await self.owner(kind, rid)
        if kind == "model" and owner is None:
            return  # models nobody registered at run time: the inference router's own errors apply
        getter = GETTERS.get(kind)
        route = self.getters.get(getter[:2]) if getter is not None else None
        if getter is None or route is None or getter[0] not in self.impls:
            return
        method = getattr(self.impls[getter[0]], getter[1])
        allowed = self.decides(principal, action, kind, rid, owner)
        asked = rid if allowed else _fake_like(rid)
        assert route.request_type is not None
        try:
            await method(route.request_type.model_validate({getter[2]: asked}))
        except NotFoundError as exc:
            raise _missing_like(exc, asked, rid) from None
        if not allowed:
            raise NotFoundError(f"'{rid}' not found; list what you can use with the list endpoint.")

    async def _owned(self, kind: str, result: Any, principal: Principal) -> Any:
        if hasattr(result, "__anext__"):  # a stream: its first chunk or event carries the id
            return _recording(result, lambda rid: self.own(kind, rid, principal))
        rid = getattr(result, "id", None) or getattr(result, "identifier", None)
        if isinstance(rid, str):
            await self.own(kind, rid, principal)
        return result

    async def _readable(self, principal: Principal, kind: str, request: BaseModel, page: Any,
                        method: Callable[[Any], Awaitable[Any]]) -> Any:
        """The page without what `principal` may not read; a cursor page is refilled from later pages."""
        limit = getattr(request, "limit", None)
        kept = [i for i in page.data if await self.allows(principal, "read", kind, _id(i))]
        more = bool(getattr(page, "has_more", False))
        cursor = "after" in type(request).model_fields
        while isinstance(limit, int) and len(kept) < limit and more and page.data and cursor:
            page = await method(request.model_copy(update={"after": _id(page.data[-1])}))
            kept += [i for i in page.data if await self.allows(principal, "read", kind, _id(i))]
            more = bool(getattr(page, "has_more", False))
        if isinstance(limit, int) and len(kept) > limit:
            kept, more = kept[:limit], True
        update: dict[str, Any] = {"data": kept}
        if "has_more" in type(page).model_fields:
            update["has_more"] = more
        for field, pick in (("first_id", 0), ("last_id", -1)):
            if field in type(page).model_fields:
                update[field] = _id(kept[pick]) if kept else None
        return page.model_copy(update=update)


def _id(item: Any) -> str:
    return str(getattr(item, "id", None) or getattr(item, "identifier", ""))


def _fake_like(rid: str) -> str:
    """An id shaped like `rid` (same prefix) that names nothing."""
    head, sep, _ = rid.rpartition("_") if "_" in rid else rid.rpartition("-")
    return f"{head}{sep}{secrets.token_hex(12)}" if sep else secrets.token_hex(12)


def _recording(stream: AsyncIterator[Any], record: Callable[[str], Awaitable[None]]) -> Stream[Any]:
    async def relay() -> AsyncIterator[Any]:
        recorded = False
        async for item in stream:
            if not recorded:
                response = getattr(item, "response", None)
                rid = getattr(response, "id", None) if response is not None else getattr(item, "id", None)
                if isinstance(rid, str):
                    await record(rid)
                    recorded = True
            yield item

    return Stream(relay(), lambda: aclose(stream))
