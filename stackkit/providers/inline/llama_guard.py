"""inline::llama-guard — a Llama Guard model, served by any inference provider, as a shield.

Builds the Llama Guard 3 prompt (categories S1-S14 minus `excluded_categories`, the conversation
as User/Agent turns, an assessment of the last user or agent message), asks the model through the
Inference API, and parses ``safe`` / ``unsafe`` + categories. An answer it cannot parse is an
error, never a silent pass. The shield's provider_shield_id names the Llama Guard model.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from pydantic import Field

from stackkit.apis.datatypes import Api, ProviderConfigBase
from stackkit.apis.inference import AssistantMessage, ChatCompletionRequest, ToolMessage, UserMessage, content_text
from stackkit.apis.safety import (
    ModerationRequest,
    ModerationResponse,
    ModerationResult,
    RunShieldRequest,
    RunShieldResponse,
    SafetyViolation,
    ViolationLevel,
)
from stackkit.errors import InvalidRequestError, ProviderError

CATEGORIES = {
    "S1": "Violent Crimes", "S2": "Non-Violent Crimes", "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation", "S5": "Defamation", "S6": "Specialized Advice", "S7": "Privacy",
    "S8": "Intellectual Property", "S9": "Indiscriminate Weapons", "S10": "Hate", "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content", "S13": "Elections", "S14": "Code Interpreter Abuse",
}
_ANSWER = re.compile(r"^\s*(safe|unsafe)\s*(?:\n\s*(S\d{1,2}(?:\s*,\s*S\d{1,2})*))?\s*$", re.IGNORECASE)
PROMPT = """Task: Check if there is unsafe content in '{role}' messages in conversations according our safety \
policy with the below categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
{categories}
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

{conversation}

<END CONVERSATION>

Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:
 - First line must read 'safe' or 'unsafe'.
 - If unsafe, a second line must include a comma-separated list of violated categories."""


class LlamaGuardConfig(ProviderConfigBase):
    excluded_categories: list[str] = Field(default_factory=list, description="e.g. ['S6'] to allow advice")
    max_tokens: int = Field(default=20, ge=1)

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"excluded_categories": []}


def build_prompt(turns: list[tuple[str, str]], excluded: set[str]) -> str:
    role = "Agent" if turns[-1][0] == "Agent" else "User"
    categories = "\n".join(f"{code}: {name}." for code, name in CATEGORIES.items() if code not in excluded)
    conversation = "\n\n".join(f"{who}: {text}" for who, text in turns)
    return PROMPT.format(role=role, categories=categories, conversation=conversation)


def parse_answer(answer: str, excluded: set[str]) -> list[str] | None:
    """None when safe, else the violated categories; raises when the answer is not Llama Guard's format."""
    m = _ANSWER.match(answer)
    if m is None:
        raise ProviderError(f"inline::llama-guard could not parse the model's answer {answer[:200]!r}; is the "
                            "shield's model a Llama Guard model? Check its provider_shield_id.")
    if m.group(1).lower() == "safe":
        return None
    codes = [c.strip().upper() for c in (m.group(2) or "").split(",") if c.strip()]
    unknown = [c for c in codes if c not in CATEGORIES]
    if unknown:
        raise ProviderError("inline::llama-guard: the model named unknown categories (check that it is "
                            f"Llama Guard 3) {unknown}")
    kept = [c for c in codes if c not in excluded]
    return kept if kept or not codes else None


class LlamaGuardSafety:
    def __init__(self, config: LlamaGuardConfig, inference: Any) -> None:
        self.config = config
        self.inference = inference

    async def _assess(self, model: str, turns: list[tuple[str, str]], excluded: set[str]) -> list[str] | None:
        request = ChatCompletionRequest.model_validate({
            "model": model, "temperature": 0, "max_tokens": self.config.max_tokens,
            "messages": [{"role": "user", "content": build_prompt(turns, excluded)}]})
        result = await self.inference.chat_completion(request)
        answer = result.choices[0].message.content or ""
        return parse_answer(answer, excluded)

    def _excluded(self, params: dict[str, Any]) -> set[str]:
        return {c.upper() for c in params.get("excluded_categories", self.config.excluded_categories)}

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        turns = []
        for m in request.messages:
            if isinstance(m, (UserMessage, ToolMessage)):
                turns.append(("User", content_text(m.content)))
            elif isinstance(m, AssistantMessage):
                turns.append(("Agent", content_text(m.content)))
        if not turns:
            raise InvalidRequestError("Llama Guard checks user and assistant messages; send at least one.",
                                      param="messages")
        excluded = self._excluded(request.params)
        violated = await self._assess(request.shield_id, turns, excluded)
        if violated is None:
            return RunShieldResponse()
        names = [CATEGORIES[c] for c in violated]
        return RunShieldResponse(violation=SafetyViolation(
            violation_level=ViolationLevel.error,
            user_message=f"I can't help with that: it falls under {', '.join(names) or 'an unsafe category'}.",
            metadata={"categories": violated, "category_names": names, "checked_role": turns[-1][0].lower()}))

    async def moderation(self, request: ModerationRequest) -> ModerationResponse:
        assert request.model is not None  # the router fills in the shield's model
        inputs = [request.input] if isinstance(request.input, str) else request.input
        excluded = self._excluded({})
        results = []
        for text in inputs:
            violated = set(await self._assess(request.model, [("User", text)], excluded) or [])
            results.append(ModerationResult(
                flagged=bool(violated),
                categories={name: code in violated for code, name in CATEGORIES.items() if code not in excluded},
                category_scores={name: float(code in violated) for code, name in CATEGORIES.items()
                                 if code not in excluded}))
        return ModerationResponse(id=f"modr-{uuid.uuid4().hex}", model=request.model, results=results)


async def create(config: LlamaGuardConfig, deps: dict[Api, Any]) -> LlamaGuardSafety:
    return LlamaGuardSafety(config, deps[Api.inference])
