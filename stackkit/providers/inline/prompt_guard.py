"""inline::prompt-guard — a Transformers sequence classifier for prompt injection and jailbreaks.

Any local classifier works (Prompt Guard's labels are BENIGN / INJECTION / JAILBREAK): a message is
flagged when the probability of any label other than the benign one reaches `threshold`.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pydantic import Field

from stackkit.apis.datatypes import Api, ProviderConfigBase
from stackkit.apis.inference import UserMessage, content_text
from stackkit.apis.safety import (
    ModerationRequest,
    ModerationResponse,
    ModerationResult,
    RunShieldRequest,
    RunShieldResponse,
    SafetyViolation,
    ViolationLevel,
)
from stackkit.errors import ConfigError, MissingPackageError


class PromptGuardConfig(ProviderConfigBase):
    model: str = Field(description="a local sequence-classification model directory")
    threshold: float = Field(default=0.9, gt=0, le=1)
    benign_label: str = "BENIGN"
    max_length: int = Field(default=512, ge=8)

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"model": "${env.PROMPT_GUARD_MODEL:=}", "threshold": 0.9}


class PromptGuardSafety:
    def __init__(self, config: PromptGuardConfig, model: Any, tokenizer: Any) -> None:
        self.config, self.model, self.tokenizer = config, model, tokenizer
        self.labels: dict[int, str] = {int(k): str(v).upper() for k, v in model.config.id2label.items()}

    def _scores(self, texts: list[str]) -> list[dict[str, float]]:
        import torch

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.config.max_length,
                               return_tensors="pt")
        with torch.no_grad():
            probs = torch.softmax(self.model(**batch).logits.float(), dim=-1)
        return [{self.labels[i]: float(p) for i, p in enumerate(row)} for row in probs]

    def _flagged(self, scores: dict[str, float]) -> list[str]:
        benign = self.config.benign_label.upper()
        return [label for label, p in scores.items() if label != benign and p >= self.config.threshold]

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        texts = [content_text(m.content) for m in request.messages if isinstance(m, UserMessage)]
        if not texts:
            return RunShieldResponse()
        for text, scores in zip(texts, await asyncio.to_thread(self._scores, texts), strict=True):
            flagged = self._flagged(scores)
            if flagged:
                return RunShieldResponse(violation=SafetyViolation(
                    violation_level=ViolationLevel.error,
                    user_message="This looks like a prompt injection or jailbreak attempt; it was not passed on.",
                    metadata={"categories": [f.lower() for f in flagged], "scores": scores, "text": text[:200]}))
        return RunShieldResponse()

    async def moderation(self, request: ModerationRequest) -> ModerationResponse:
        inputs = [request.input] if isinstance(request.input, str) else request.input
        results = []
        for scores in await asyncio.to_thread(self._scores, inputs):
            flagged = self._flagged(scores)
            results.append(ModerationResult(
                flagged=bool(flagged), categories={k.lower(): k in flagged for k in scores},
                category_scores={k.lower(): v for k, v in scores.items()}))
        return ModerationResponse(id=f"modr-{uuid.uuid4().hex}", model=request.model or "prompt-guard",
                                  results=results)


def _load(config: PromptGuardConfig) -> tuple[Any, Any]:
    try:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as exc:
        raise MissingPackageError(exc.name or "transformers", "transformers") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model)
        model = AutoModelForSequenceClassification.from_pretrained(config.model).eval()
    except OSError as exc:
        raise ConfigError(f"inline::prompt-guard could not load {config.model!r}: {exc}; point `model` at a "
                          "classifier directory") from exc
    return model, tokenizer


async def create(config: PromptGuardConfig, deps: dict[Api, Any]) -> PromptGuardSafety:
    model, tokenizer = await asyncio.to_thread(_load, config)
    return PromptGuardSafety(config, model, tokenizer)
