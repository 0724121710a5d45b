"""The one exception tree of stackkit.

Every message says what went wrong *and* how to fix it. Provider SDK and HTTP
errors are translated into this tree at the provider boundary, so the server
and the LibraryClient only ever see these types::

    StackkitError                      500 server_error
    ├── ConfigError                    a run.yaml / distribution problem (file, line, field, fix)
    │   ├── DependencyError            provider dependency cycle or missing dependency
    │   └── ProtocolComplianceError    a provider lacks methods of its API's Protocol
    ├── MissingPackageError            an optional package is not installed (names the pip extra)
    ├── StateInUseError                another process serves the same state directory
    ├── InvalidRequestError            400 invalid_request_error (param names the field)
    ├── AuthenticationError            401 authentication_error
    ├── PermissionDeniedError          403 permission_error
    ├── NotFoundError                  404 not_found_error (lists what is known)
    ├── ConflictError                  409 conflict_error
    ├── RequestTooLargeError           413 request_too_large
    ├── RateLimitError                 429 rate_limit_error (retry_after seconds)
    └── ProviderError                  a provider failed
        ├── UpstreamError              502 upstream_error (refused, reset, 5xx)
        ├── ProviderUnavailableError   503 service_unavailable
        └── UpstreamTimeoutError       504 timeout_error
"""

from __future__ import annotations

from typing import Any


class StackkitError(Exception):
    """Base of every error stackkit raises on purpose."""

    status_code: int = 500
    error_type: str = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def to_openai_body(self) -> dict[str, Any]:
        """The error as OpenAI's wire format: ``{"error": {message, type, param, code}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class ConfigError(StackkitError):
    """A configuration problem; the message names the file, line, field and fix."""

    error_type = "config_error"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        if field:
            where += f"{field}: "
        super().__init__(where + message, param=field)
        self.file = file
        self.line = line
        self.field = field


class DependencyError(ConfigError):
    """Providers depend on each other in a cycle, or on an API nobody provides."""


class ProtocolComplianceError(ConfigError):
    """A provider implementation does not implement every method of its API."""


class MissingPackageError(StackkitError):
    """An optional dependency is missing; the message names the pip extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"The '{package}' package is required for this provider but is not installed. "
            f"Install it with: pip install 'stackkit[{extra}]'"
        )
        self.package = package
        self.extra = extra


class StateInUseError(StackkitError):
    """Another stackkit process holds the state directory (one writer per directory)."""

    error_type = "state_in_use"


class InvalidRequestError(StackkitError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(StackkitError):
    status_code = 401
    error_type = "authentication_error"


class PermissionDeniedError(StackkitError):
    status_code = 403
    error_type = "permission_error"


class NotFoundError(StackkitError):
    status_code = 404
    error_type = "not_found_error"


class ConflictError(StackkitError):
    status_code = 409
    error_type = "conflict_error"


class RequestTooLargeError(StackkitError):
    status_code = 413
    error_type = "request_too_large"


class RateLimitError(StackkitError):
    status_code = 429
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderError(StackkitError):
    """A provider (or the service behind it) failed to do its job."""

    status_code = 502
    error_type = "upstream_error"


class UpstreamError(ProviderError):
    status_code = 502
    error_type = "upstream_error"


class ProviderUnavailableError(ProviderError):
    status_code = 503
    error_type = "service_unavailable"


class UpstreamTimeoutError(ProviderError):
    status_code = 504
    error_type = "timeout_error"


class AgentLoopError(StackkitError):
    """An `Agent`'s model kept calling tools past `max_turns`: the run stops instead of looping forever."""

    status_code = 500
    error_type = "agent_loop_error"


__all__ = [
    "AgentLoopError",
    "AuthenticationError",
    "ConfigError",
    "ConflictError",
    "DependencyError",
    "InvalidRequestError",
    "MissingPackageError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProtocolComplianceError",
    "ProviderError",
    "ProviderUnavailableError",
    "RateLimitError",
    "RequestTooLargeError",
    "StackkitError",
    "StateInUseError",
    "UpstreamError",
    "UpstreamTimeoutError",
]
