"""RemoteClient: a running stackkit server, called with the same SDK-shaped names as LibraryClient.

Generated from the route table like the server and the LibraryClient, on httpx (a core dependency), so
tools such as ``stackkit ingest --base-url`` work in any install, without the ``openai`` package.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
from pydantic import BaseModel

from stackkit.apis.datatypes import Route
from stackkit.apis.protocols import route_table
from stackkit.core.library_client import _build_tree, _request_data
from stackkit.core.sdk_compat import BinaryContent, SyncPage, is_cursor_route, is_page_route
from stackkit.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProviderUnavailableError,
    RateLimitError,
    RequestTooLargeError,
    StackkitError,
    UpstreamError,
    UpstreamTimeoutError,
)

_BY_STATUS: dict[int, type[StackkitError]] = {
    400: InvalidRequestError, 401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
    409: ConflictError, 413: RequestTooLargeError, 429: RateLimitError, 502: UpstreamError,
    503: ProviderUnavailableError, 504: UpstreamTimeoutError,
}
_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def _error(response: httpx.Response) -> StackkitError:
    try:
        body = orjson.loads(response.content)["error"]
        message, param, code = str(body["message"]), body.get("param"), body.get("code")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message, param, code = response.text[:500] or response.reason_phrase, None, None
    err = _BY_STATUS.get(response.status_code, StackkitError)(message)
    err.param, err.code, err.status_code = param, code, response.status_code
    return err


class RemoteClient:
    """``with RemoteClient("http://127.0.0.1:8321/v1") as client: client.vector_stores.list()``"""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 600.0) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout)
        _build_tree(self, self._operation, list(route_table()))

    def _operation(self, route: Route) -> Callable[..., Any]:
        path = route.path.removeprefix("/v1/")

        def call(*args: Any, **kwargs: Any) -> Any:
            headers = kwargs.pop("extra_headers", None) or {}
            data = _request_data(route, args, kwargs)
            url = _PARAM.sub(lambda m: str(data.pop(m.group(1))), path)
            response = self._send(route, url, data, headers)
            if response.status_code >= 400:
                raise _error(response)
            if route.stream_type is not None and data.get("stream"):
                return _events(response, route.stream_type)
            if route.response_type is bytes:
                return BinaryContent(response.content)
            assert route.response_type is not None
            result = route.response_type.model_validate_json(response.content)
            if is_page_route(route):
                return SyncPage(result, (lambda after: call(*args, **{**kwargs, "after": after}))
                                if is_cursor_route(route) else None)
            return result

        call.__name__, call.__doc__ = route.name, route.summary
        return call

    def _send(self, route: Route, url: str, data: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        if route.method in ("GET", "DELETE"):
            return self._http.request(route.method, url, params=data, headers=headers)
        if route.body == "multipart":
            file = (data.pop("filename"), data.pop("file"))
            form = {k: str(v) for k, v in data.items() if not isinstance(v, dict)}
            form |= {f"{k}[{sub}]": str(v) for k, d in data.items() if isinstance(d, dict) for sub, v in d.items()}
            return self._http.post(url, data=form, files={"file": file}, headers=headers)
        request = self._http.build_request("POST", url, content=orjson.dumps(data),
                                           headers={"content-type": "application/json", **headers})
        return self._http.send(request, stream=bool(data.get("stream")))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _events(response: httpx.Response, chunk_type: type[BaseModel]) -> Iterator[BaseModel]:
    try:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            payload = orjson.loads(line[6:])
            if "error" in payload:
                raise StackkitError(str(payload["error"].get("message")))
            yield chunk_type.model_validate(payload)
    finally:
        response.close()
