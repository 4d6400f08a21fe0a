"""LLM gateway collector: LiteLLM proxy logging payloads and any OpenAI-compatible gateway's exchanges.

Sources of the same `llm-request` event (one per LLM call, `event.dataset: aisoc.inference`):

- **push** (`parse_push`): LiteLLM's `generic_api` callback POSTs its StandardLoggingPayloads to our
  receiver as a JSON array (its default `log_format: json_array`), as NDJSON (`ndjson`) or one
  object per request (`single`). Point it at aisoc with `callbacks: ["generic_api"]`,
  `GENERIC_LOGGER_ENDPOINT=https://aisoc:8080/ingest/litellm` and
  `GENERIC_LOGGER_HEADERS="Authorization=Bearer <token>"`.
- **pull** (`LLMGatewayCollector.pull`): `GET /spend/logs/v2` (needs LiteLLM's Postgres database),
  rows adapted by `spend_log_to_payload`.
- **replay** (`replay`): NDJSON or JSON-array files of StandardLoggingPayloads.
- **any OpenAI-compatible gateway** (`map_openai_exchange`): a chat/text completion request and
  its response, plus what the gateway knows about the caller (`ExchangeMeta`).

Secrets and prompts: the API key itself is never stored. LiteLLM logs `user_api_key_hash`
(sha256 of a virtual key), but for master-key calls the alias `litellm_proxy_master_key` and, in
no-auth development mode, the key as sent; any value that is not a sha256 hex digest is hashed
here (so `aisoc.api_key.hash` is always sha256 hex) and redacted from `event.original`. Prompt
text appears only in the size-capped `event.original`; events carry its length and skeleton hash.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from aisoc.collectors.base import CursorStore, MappingError, cap_original, make_event, read_replay_file
from aisoc.records import Rejected
from aisoc.rules.model import normalize_timestamp

PROVIDER = "litellm"
ACTION = "llm-request"
LAYER = "inference"
MASTER_KEY_ALIAS = "litellm_proxy_master_key"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_REPLAY_FILE_BYTES = 256 * 1024 * 1024
MAX_REASON = 1024
MAX_RAW = 64 * 1024
MAX_TEXT_FIELD = 1024
MAX_SKELETON_CHARS = 1024 * 1024
MAX_SAFE_INT = 2**53
MAX_EPOCH_SECONDS = 253402300799  # 9999-12-31T23:59:59Z
HEX64 = re.compile(r"[0-9a-f]{64}")

# LiteLLM call_type -> OpenTelemetry gen_ai.operation.name
OPERATIONS = {
    "completion": "chat", "acompletion": "chat", "anthropic_messages": "chat",
    "text_completion": "text_completion", "atext_completion": "text_completion",
    "embedding": "embeddings", "aembedding": "embeddings",
    "generate_content": "generate_content", "agenerate_content": "generate_content",
}
# LiteLLM guardrail_status -> aisoc.llm.guardrail.outcome ("not_run" is no decision)
GUARDRAIL_OUTCOMES = {
    "success": "passed", "passed": "passed",
    "guardrail_flagged": "flagged", "flagged": "flagged",
    "guardrail_intervened": "blocked", "blocked": "blocked", "failure": "blocked",
    "guardrail_failed_to_respond": "error", "error": "error",
}
OUTCOME_RANK = {"passed": 0, "error": 1, "flagged": 2, "blocked": 3}
# LiteLLM GuardrailEventHooks -> aisoc.llm.guardrail.mode (MCP hooks sit at the same points of a tool call)
GUARDRAIL_MODES = {
    "pre_call": "pre_call", "during_call": "during_call", "post_call": "post_call",
    "logging_only": "logging_only", "pre_mcp_call": "pre_call", "during_mcp_call": "during_call",
    "post_mcp_call": "post_call",
}


# ---- config ------------------------------------------------------------------------------------


class LLMGatewayConfig(BaseModel):
    """Where the LLM gateway collector receives from and pulls from. Secrets come from the environment."""

    model_config = ConfigDict(extra="forbid")

    name: str = "llm_gateway"
    receiver_token_env: str | None = Field(
        default=None,
        description="Env var holding the bearer token LiteLLM must send (GENERIC_LOGGER_HEADERS). Unset = "
                    "parse_push does not check (the service's receiver authenticates). Set but empty = every "
                    "push is refused (fail closed).")
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=256 * 1024 * 1024)
    pull_url: str | None = Field(default=None, description="Base URL of the LiteLLM proxy; /spend/logs/v2 is appended.")
    pull_key_env: str = Field(default="AISOC_LITELLM_API_KEY",
                              description="Env var holding the proxy key used for /spend/logs/v2.")
    pull_page_size: int = Field(default=100, ge=1, le=1000)
    pull_lookback_seconds: int = Field(default=3600, ge=60, description="First pull window when no cursor exists.")
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    verify_tls: bool = True

    def receiver_token(self) -> str | None:
        """The expected bearer token, `""` when the env var is configured but unset (refuse all), else None."""
        if self.receiver_token_env is None:
            return None
        return os.environ.get(self.receiver_token_env, "")


# ---- small value checks --------------------------------------------------------------------------


def _reject(source: str, reason: str, raw: bytes | str, line: int | None = None) -> Rejected:
    return Rejected(source=source, reason=reason[:MAX_REASON], raw=raw[:MAX_RAW], line=line)


def _text(value: Any, what: str, max_len: int = MAX_TEXT_FIELD) -> str | None:
    """A string field (None/"" -> None); other types are a mapping error."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MappingError(f"{what} must be a string, got {type(value).__name__}")
    return value[:max_len]


def _count(value: Any, what: str) -> int | None:
    """A non-negative integer LiteLLM computed (tokens): wrong type or out of range is a mapping error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MappingError(f"{what} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value != int(value) or not 0 <= value < MAX_SAFE_INT:
        raise MappingError(f"{what} must be a non-negative integer below 2^53, got {value!r}")
    return int(value)


def _amount(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MappingError(f"{what} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or abs(value) > 1e15:
        raise MappingError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _time(value: Any, what: str) -> datetime:
    """Epoch seconds (LiteLLM's startTime/endTime) or an ISO-8601 string (spend logs) -> aware datetime."""
    if isinstance(value, bool) or value is None or value == "":
        raise MappingError(f"{what} is missing")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 < value <= MAX_EPOCH_SECONDS:
            raise MappingError(f"{what} {value!r} is not seconds since the epoch")
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str) and len(value) <= 64:
        text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())
        try:
            stamp = normalize_timestamp(text)
        except (ValueError, OverflowError, TypeError):
            stamp = None
        if stamp:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    raise MappingError(f"{what} {str(value)[:64]!r} is not epoch seconds or an ISO-8601 time")


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MappingError(f"{what} must be an object, got {type(value).__name__}")
    return value


def _ip(value: Any) -> str | None:
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def api_key_fields(logged: Any, alias: Any = None) -> tuple[dict[str, Any], str | None]:
    """`aisoc.api_key.hash`/`.alias` from what the gateway logged as the key hash.

    A sha256 hex digest passes through (lower-cased). Anything else is hashed here: LiteLLM logs the
    alias `litellm_proxy_master_key` for master-key calls and, in no-auth development mode, the key
    as sent. Returns the fields and the secret to redact from `event.original` (None if nothing is).
    """
    fields: dict[str, Any] = {"aisoc.api_key.alias": alias if isinstance(alias, str) and alias else None}
    if not isinstance(logged, str) or not logged:
        return fields, None
    if HEX64.fullmatch(logged.lower()):
        fields["aisoc.api_key.hash"] = logged.lower()
        return fields, None
    fields["aisoc.api_key.hash"] = sha256_hex(logged)
    if logged == MASTER_KEY_ALIAS:
        fields["aisoc.api_key.alias"] = fields["aisoc.api_key.alias"] or MASTER_KEY_ALIAS
        return fields, None
    return fields, logged


# ---- prompts ------------------------------------------------------------------------------------

_SKELETON_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # quoted strings: "...", '...' (not apostrophes inside words), `...`, “...”, «...»
    (re.compile(r'"[^"\n]*"|(?<!\w)\'[^\'\n]*\'(?!\w)|`[^`\n]*`|“[^”\n]*”|«[^»\n]*»'), "<str>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b(?:0x)?(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.I), "<hex>"),
    (re.compile(r"\S{24,}"), "<tok>"),
    (re.compile(r"\d+(?:[.,_]\d+)*"), "<num>"),
    (re.compile(r"\s+"), " "),
)


def prompt_skeleton(text: str) -> str:
    """The template skeleton of a prompt: what stays equal when a script fills one template.

    In this order: quoted strings ("...", '...', `...`, “...”, «...») become `<str>`; UUIDs
    `<uuid>`; hex strings of 8+ characters with a digit (hashes, ids, 0x...) `<hex>`; any other run
    of 24+ non-space characters (base64, URLs, long identifiers) `<tok>`; numbers `<num>`;
    whitespace runs one space; then the text is case-folded and trimmed. Only the first 1 MiB of a
    prompt is considered. Example: `Classify "great phone" (id 8812)` and `classify "awful" (id 17)`
    both become `classify <str> (id <num>)`.
    """
    out = text[:MAX_SKELETON_CHARS]
    for pattern, placeholder in _SKELETON_RULES:
        out = pattern.sub(placeholder, out)
    return out.strip().casefold()


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                parts.append(text if isinstance(text, str) else f"<{str(part.get('type', 'part'))[:32]}>")
        return "\n".join(parts)
    return ""


def prompt_parts(messages: Any) -> list[tuple[str, str]]:
    """(role, text) pairs of chat messages, a text prompt, or embedding inputs; unknown shapes give []."""
    if messages is None:
        return []
    if isinstance(messages, str):
        return [("prompt", messages)]
    if isinstance(messages, dict):
        messages = [messages]
    if not isinstance(messages, list):
        return []
    parts: list[tuple[str, str]] = []
    for message in messages:
        if isinstance(message, str):
            parts.append(("prompt", message))
        elif isinstance(message, dict):
            role = message.get("role")
            parts.append((role[:32] if isinstance(role, str) else "", _content_text(message.get("content"))))
        elif isinstance(message, list) and all(isinstance(t, int) for t in message[:16]):
            parts.append(("prompt", "<token ids>"))
    return parts


def prompt_fields(messages: Any) -> dict[str, Any]:
    """`aisoc.llm.prompt.length` (characters of all message texts) and `.skeleton_hash`.

    skeleton_hash = sha256 hex of the lines `<role>: <prompt_skeleton(text)>`, one per message, so
    a fixed system prompt plus a filled-in user template hashes the same on every call.
    """
    parts = prompt_parts(messages)
    if not parts:
        return {}
    lines = "\n".join(f"{role}: {prompt_skeleton(text)}" for role, text in parts)
    return {
        "aisoc.llm.prompt.length": sum(len(text) for _, text in parts),
        "aisoc.llm.prompt.skeleton_hash": sha256_hex(lines),
    }


# ---- responses: finish reasons, logprob confidence ------------------------------------------------


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _top_two(position: dict[str, Any]) -> tuple[float, float | None] | None:
    """Log-probabilities of the top and second token at one chat-format position."""
    candidates = [lp for lp in [_finite(position.get("logprob"))] if lp is not None]
    alternatives = position.get("top_logprobs")
    if isinstance(alternatives, list):
        candidates += [lp for alt in alternatives if isinstance(alt, dict)
                       for lp in [_finite(alt.get("logprob"))] if lp is not None]
    if not candidates:
        return None
    ranked = sorted(set(candidates), reverse=True)
    return ranked[0], ranked[1] if len(ranked) > 1 else None


def logprob_confidence(logprobs: Any) -> tuple[float | None, float | None]:
    """(confidence, margin) of a completion from its token log-probabilities.

    confidence = exp(mean over positions of the top token's logprob), the geometric mean of the
    per-token top probabilities (1.0 = the model was certain of every token). The top token is the
    most probable of the sampled token and its `top_logprobs` alternatives. margin = mean over
    positions with at least two candidates of p(top1) - p(top2). Accepts the chat format
    (`{"content": [{"token", "logprob", "top_logprobs": [...]}]}`) and the legacy completions format
    (`{"token_logprobs": [...], "top_logprobs": [{token: logprob}]}`). (None, None) without data.
    """
    tops: list[float] = []
    gaps: list[float] = []
    if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
        for position in logprobs["content"]:
            if isinstance(position, dict) and (pair := _top_two(position)) is not None:
                tops.append(pair[0])
                if pair[1] is not None:
                    gaps.append(math.exp(pair[0]) - math.exp(pair[1]))
    elif isinstance(logprobs, dict) and isinstance(logprobs.get("token_logprobs"), list):
        alternatives = logprobs.get("top_logprobs") if isinstance(logprobs.get("top_logprobs"), list) else []
        for i, sampled in enumerate(logprobs["token_logprobs"]):
            alt = alternatives[i] if i < len(alternatives) and isinstance(alternatives[i], dict) else {}
            candidates = [lp for lp in [_finite(sampled), *map(_finite, alt.values())] if lp is not None]
            if candidates:
                ranked = sorted(set(candidates), reverse=True)
                tops.append(ranked[0])
                if len(ranked) > 1:
                    gaps.append(math.exp(ranked[0]) - math.exp(ranked[1]))
    if not tops:
        return None, None
    confidence = min(1.0, math.exp(sum(tops) / len(tops)))
    margin = sum(gaps) / len(gaps) if gaps else None
    return round(confidence, 6), None if margin is None else round(min(1.0, max(0.0, margin)), 6)


def response_fields(response: Any) -> dict[str, Any]:
    """Response id, finish reasons and logprob confidence of an OpenAI-format response."""
    if not isinstance(response, dict):
        return {}
    choices = response.get("choices") if isinstance(response.get("choices"), list) else []
    reasons = [c["finish_reason"][:64] for c in choices
               if isinstance(c, dict) and isinstance(c.get("finish_reason"), str) and c["finish_reason"]]
    first = choices[0] if choices and isinstance(choices[0], dict) else {}
    confidence, margin = logprob_confidence(first.get("logprobs"))
    response_id = response.get("id")
    return {
        "gen_ai.response.id": response_id[:256] if isinstance(response_id, str) else None,
        "gen_ai.response.finish_reasons": reasons[:16],
        "aisoc.inference.confidence": confidence,
        "aisoc.inference.margin": margin,
    }


# ---- request parameters ---------------------------------------------------------------------------


def _param_number(params: dict[str, Any], key: str, integer: bool, invalid: list[str]) -> float | int | None:
    """A client-chosen parameter; a value that is not a usable number is noted in `invalid`, not fatal."""
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            invalid.append(key)
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        invalid.append(key)
        return None
    if integer:
        if value != int(value) or abs(value) >= 2**31:
            invalid.append(key)
            return None
        return int(value)
    return float(value)


def parameter_fields(params: Any, prefix: str = "") -> tuple[dict[str, Any], list[str]]:
    """gen_ai.request.* and logprobs fields from request parameters; returns (fields, invalid `prefix+key`s)."""
    if not isinstance(params, dict):
        return {}, ([] if params is None else [prefix.rstrip(".") or "parameters"])
    invalid: list[str] = []
    max_tokens = _param_number(params, "max_tokens", True, invalid)
    if max_tokens is None:
        max_tokens = _param_number(params, "max_completion_tokens", True, invalid)
    top_logprobs = _param_number(params, "top_logprobs", True, invalid)
    raw_logprobs = params.get("logprobs")
    if isinstance(raw_logprobs, bool) or raw_logprobs is None:
        requested = bool(raw_logprobs)
    elif isinstance(raw_logprobs, int | float) and math.isfinite(raw_logprobs):
        requested = raw_logprobs > 0  # legacy completions: logprobs=N alternatives
        if top_logprobs is None and requested and raw_logprobs == int(raw_logprobs) and raw_logprobs < 2**31:
            top_logprobs = int(raw_logprobs)
    else:
        invalid.append("logprobs")
        requested = False
    requested = requested or bool(top_logprobs and top_logprobs > 0)
    fields = {
        "gen_ai.request.temperature": _param_number(params, "temperature", False, invalid),
        "gen_ai.request.top_p": _param_number(params, "top_p", False, invalid),
        "gen_ai.request.max_tokens": max_tokens,
        "gen_ai.request.seed": _param_number(params, "seed", True, invalid),
        "gen_ai.request.choice.count": _param_number(params, "n", True, invalid),
        "aisoc.llm.logprobs_requested": requested,
        "aisoc.llm.top_logprobs": top_logprobs,
    }
    return fields, [f"{prefix}{key}" for key in invalid]


# ---- guardrails -----------------------------------------------------------------------------------


def _guardrail_mode(value: Any) -> str | None:
    if isinstance(value, dict):  # GuardrailMode {tags, default}
        value = value.get("default")
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v in GUARDRAIL_MODES), None)
    return GUARDRAIL_MODES.get(value) if isinstance(value, str) else None


def guardrail_fields(information: Any, summary_status: Any = None) -> dict[str, Any]:
    """The decisive guardrail of a call: outcome, name and mode, plus every decision.

    LiteLLM logs one entry per guardrail that ran (older releases: a single object). The event
    carries the most severe decision (blocked > flagged > error > passed; the first among equals),
    so a rule matching outcome, name and mode together sees one guardrail's decision, never a mix of
    two. `aisoc.llm.guardrail.decisions` lists them all as `name:mode:outcome`. Entries that did not
    run (`not_run`) are no decision. With no entries, `status_fields.guardrail_status` gives the outcome.
    """
    entries = [information] if isinstance(information, dict) else information
    decisions: list[tuple[str | None, str | None, str]] = []
    if isinstance(entries, list):
        for entry in entries[:32]:
            if not isinstance(entry, dict):
                continue
            status = entry.get("guardrail_status")
            outcome = GUARDRAIL_OUTCOMES.get(status) if isinstance(status, str) else None
            if outcome is None:
                continue
            name = entry.get("guardrail_name") or entry.get("guardrail_provider")
            decisions.append((name[:128] if isinstance(name, str) else None,
                              _guardrail_mode(entry.get("guardrail_mode")), outcome))
    if not decisions:
        outcome = GUARDRAIL_OUTCOMES.get(summary_status) if isinstance(summary_status, str) else None
        return {"aisoc.llm.guardrail.outcome": outcome}
    name, mode, outcome = max(decisions, key=lambda d: OUTCOME_RANK[d[2]])  # max keeps the first of equals
    return {
        "aisoc.llm.guardrail.outcome": outcome,
        "aisoc.llm.guardrail.name": name,
        "aisoc.llm.guardrail.mode": mode,
        "aisoc.llm.guardrail.decisions": [f"{n or '?'}:{m or '?'}:{o}" for n, m, o in decisions],
    }


# ---- LiteLLM StandardLoggingPayload -> event -------------------------------------------------------


def _original(payload: dict[str, Any], key_hash: str | None, secret: str | None) -> str:
    """`event.original`: the payload without LiteLLM's static model-cost table, key value redacted."""
    copy = {k: v for k, v in payload.items() if k != "model_map_information"}
    metadata = copy.get("metadata")
    if isinstance(metadata, dict) and key_hash and metadata.get("user_api_key_hash") is not None:
        copy["metadata"] = {**metadata, "user_api_key_hash": key_hash}
    text = json.dumps(copy, ensure_ascii=False, sort_keys=True, default=str)
    if secret and len(secret) >= 8:
        text = text.replace(json.dumps(secret, ensure_ascii=False)[1:-1], "[redacted api key]")
    return cap_original(text)


def _event_types(status: str, guardrail_outcome: str | None) -> list[str]:
    types = ["access"] if status == "success" else ["access", "error"]
    if guardrail_outcome == "blocked":
        types.append("denied")
    return types


def map_litellm_payload(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One LiteLLM StandardLoggingPayload -> one `llm-request` event. Raises MappingError.

    Required: `id`, `status` (success|failure), `startTime`. Fields LiteLLM computes (tokens,
    cost, times) must have their types; client-chosen parameters (`model_parameters`) that are not
    usable numbers are left out and named in `tags` (`invalid-field:model_parameters.<key>`).
    """
    if not isinstance(payload, dict):
        raise MappingError(f"a logging payload must be a JSON object, got {type(payload).__name__}")
    record_id = _text(payload.get("id"), "id", 256)
    if record_id is None:
        raise MappingError("id is missing")
    status = payload.get("status")
    if status not in ("success", "failure"):
        raise MappingError(f"status must be 'success' or 'failure', got {str(status)[:64]!r}")
    call_id = _text(payload.get("litellm_call_id"), "litellm_call_id", 256)
    start = _time(payload.get("startTime"), "startTime")
    end = _time(payload.get("endTime"), "endTime") if payload.get("endTime") not in (None, "") else None
    metadata = _mapping(payload.get("metadata"), "metadata")
    error = _mapping(payload.get("error_information"), "error_information")
    status_fields = _mapping(payload.get("status_fields"), "status_fields")
    call_type = _text(payload.get("call_type"), "call_type", 64)
    model = _text(payload.get("model"), "model", 256)
    model_group = _text(payload.get("model_group"), "model_group", 256)
    key_fields, secret = api_key_fields(metadata.get("user_api_key_hash"), metadata.get("user_api_key_alias"))
    params, invalid = parameter_fields(payload.get("model_parameters"), "model_parameters.")
    guardrails = guardrail_fields(payload.get("guardrail_information"), status_fields.get("guardrail_status"))
    end_user = _text(payload.get("end_user"), "end_user", 256) or _text(
        metadata.get("user_api_key_end_user_id"), "metadata.user_api_key_end_user_id", 256)
    team_alias = _text(metadata.get("user_api_key_team_alias"), "metadata.user_api_key_team_alias", 256) or _text(
        metadata.get("team_alias"), "metadata.team_alias", 256)
    team_id = _text(metadata.get("user_api_key_team_id"), "metadata.user_api_key_team_id", 256) or _text(
        metadata.get("team_id"), "metadata.team_id", 256)
    ip_text = payload.get("requester_ip_address") or metadata.get("requester_ip_address")
    source_ip = _ip(ip_text)
    if ip_text and source_ip is None:
        invalid.append("requester_ip_address")
    user_id = _text(metadata.get("user_api_key_user_id"), "metadata.user_api_key_user_id", 256)
    error_code = str(error.get("error_code") or "")
    status_code = int(error_code) if re.fullmatch(r"[1-5]\d\d", error_code) else (200 if status == "success" else None)
    error_message = error.get("error_message") or payload.get("error_str")
    input_tokens = _count(payload.get("prompt_tokens"), "prompt_tokens")
    output_tokens = _count(payload.get("completion_tokens"), "completion_tokens")
    total_tokens = _count(payload.get("total_tokens"), "total_tokens")
    duration = None
    if end is not None and end >= start:
        duration = int((end - start) / timedelta(microseconds=1)) * 1000
    key_hash = key_fields.get("aisoc.api_key.hash")
    fields: dict[str, Any] = {
        "event.category": ["api"],
        "event.type": _event_types(status, guardrails.get("aisoc.llm.guardrail.outcome")),
        "event.duration": duration,
        "gen_ai.operation.name": OPERATIONS.get(call_type or ""),
        "gen_ai.system": _text(payload.get("custom_llm_provider"), "custom_llm_provider", 64),
        "gen_ai.request.model": model_group or model,
        "gen_ai.response.model": model if status == "success" else None,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        "aisoc.llm.total_tokens": total_tokens,
        "aisoc.llm.cost": _amount(payload.get("response_cost"), "response_cost"),
        "aisoc.llm.call_type": call_type,
        "aisoc.llm.call_id": call_id,
        "aisoc.llm.end_user": end_user,
        **prompt_fields(payload.get("messages")),
        **response_fields(payload.get("response")),
        **params,
        **guardrails,
        **key_fields,
        "aisoc.api_key.team": team_id or team_alias,
        "organization.name": team_alias,
        "user.id": user_id,
        "source.ip": source_ip,
        "user_agent.original": _text(payload.get("user_agent") or metadata.get("user_agent"), "user_agent"),
        "url.path": _text(metadata.get("user_api_key_request_route"), "metadata.user_api_key_request_route"),
        "http.response.status_code": status_code,
        "error.type": _text(error.get("error_class"), "error_information.error_class", 256) if status == "failure"
        else None,
        "error.message": str(error_message)[:MAX_TEXT_FIELD] if status == "failure" and error_message else None,
        "related.user": sorted({u for u in (user_id, end_user) if u}),
        "related.hash": [key_hash] if key_hash else [],
        "tags": [f"invalid-field:{name}" for name in invalid],
        "message": f"LLM {call_type or 'call'} {model_group or model or '?'} {status}"
                   + (f" (guardrail {guardrails['aisoc.llm.guardrail.outcome']})"
                      if guardrails.get("aisoc.llm.guardrail.outcome") not in (None, "passed") else ""),
    }
    if fields.get("gen_ai.response.id") is None and status == "success":
        fields["gen_ai.response.id"] = record_id
    event = make_event(
        layer=LAYER, provider=PROVIDER, action=ACTION, record_id=(call_id or record_id, record_id),
        timestamp=start, fields=fields, original=_original(payload, key_hash, secret),
        outcome=status,
    )
    return [event]


# ---- /spend/logs/v2 rows ----------------------------------------------------------------------------

REQUEST_PARAMETERS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "n", "logprobs",
                      "top_logprobs")


def _maybe_json(value: Any, what: str) -> Any:
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            raise MappingError(f"{what} is a string but not valid JSON") from None
    return value


def spend_log_to_payload(row: dict[str, Any]) -> dict[str, Any]:
    """A LiteLLM spend-log row (`/spend/logs/v2` `data[]`) in StandardLoggingPayload shape."""
    if not isinstance(row, dict):
        raise MappingError(f"a spend-log row must be a JSON object, got {type(row).__name__}")
    meta = _mapping(_maybe_json(row.get("metadata"), "metadata"), "metadata")
    request = _maybe_json(row.get("proxy_server_request"), "proxy_server_request")
    request = request if isinstance(request, dict) else {}
    error = meta.get("error_information")
    status = row.get("status") or meta.get("status")
    if status is None:
        status = "failure" if isinstance(error, dict) and error.get("error_class") else "success"
    return {
        "id": row.get("request_id"),
        "litellm_call_id": row.get("litellm_call_id") or meta.get("litellm_call_id"),
        "call_type": row.get("call_type"),
        "status": status,
        "startTime": row.get("startTime"),
        "endTime": row.get("endTime"),
        "model": row.get("model"),
        "model_group": row.get("model_group"),
        "custom_llm_provider": row.get("custom_llm_provider"),
        "prompt_tokens": row.get("prompt_tokens"),
        "completion_tokens": row.get("completion_tokens"),
        "total_tokens": row.get("total_tokens"),
        "response_cost": row.get("spend"),
        "end_user": row.get("end_user"),
        "requester_ip_address": row.get("requester_ip_address") or meta.get("requester_ip_address"),
        "user_agent": meta.get("user_agent"),
        "messages": _maybe_json(row.get("messages"), "messages") or request.get("messages"),
        "response": _maybe_json(row.get("response"), "response"),
        "model_parameters": {k: request[k] for k in REQUEST_PARAMETERS if k in request},
        "guardrail_information": meta.get("guardrail_information"),
        "error_information": error,
        "metadata": {
            "user_api_key_hash": row.get("api_key"),
            "user_api_key_alias": meta.get("user_api_key_alias"),
            "user_api_key_team_id": row.get("team_id") or meta.get("user_api_key_team_id"),
            "user_api_key_team_alias": meta.get("user_api_key_team_alias"),
            "user_api_key_user_id": meta.get("user_api_key_user_id") or row.get("user"),
        },
    }


def map_spend_log(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A `/spend/logs/v2` row -> one `llm-request` event (same event.id as the pushed payload)."""
    return map_litellm_payload(spend_log_to_payload(row))


# ---- JSON records: array, NDJSON or single object ---------------------------------------------------


@dataclass(frozen=True)
class JsonRecord:
    """One record of a JSON body or file: where it is, its raw text, and the value or why it failed."""

    where: str
    line: int
    raw: str
    value: Any = None
    error: str | None = None


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _decode_error(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "not valid JSON: nested too deeply"
    return f"not valid JSON: {exc}"


_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\r\n]*")


def _array_records(text: str, source: str) -> Iterator[JsonRecord]:
    """Elements of a JSON array, each with its line; a syntax error ends the array with one record."""
    pos = _WS.match(text, 0).end() + 1  # type: ignore[union-attr]  # past "["
    pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
    if text.startswith("]", pos):
        return
    while True:
        line = _line_at(text, pos)
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            yield JsonRecord(f"{source}:{line}", line, text[pos:pos + MAX_RAW], error=_decode_error(exc))
            return
        yield JsonRecord(f"{source}:{line}", line, text[pos:end], value)
        pos = _WS.match(text, end).end()  # type: ignore[union-attr]
        if text.startswith(",", pos):
            pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
            continue
        if text.startswith("]", pos) and not text[pos + 1:].strip():
            return
        line = _line_at(text, pos)
        yield JsonRecord(f"{source}:{line}", line, text[pos:pos + MAX_RAW],
                         error="not valid JSON: expected ',' or ']' between array elements (truncated?)")
        return


def iter_json_records(text: str, source: str) -> Iterator[JsonRecord]:
    """Records of a body or file holding a JSON array, NDJSON, or one (possibly pretty-printed) object.

    `where` is `source:line`. A broken array or a broken single document is one failed record; a
    broken NDJSON line is one failed record and the other lines still count.
    """
    stripped = text.lstrip()
    if not stripped:
        return
    if stripped.startswith("["):
        yield from _array_records(text, source)
        return
    lines = text.split("\n")  # not splitlines(): U+2028 and friends may sit unescaped inside JSON strings
    first = next(i for i, line in enumerate(lines) if line.strip())
    try:
        json.loads(lines[first])
        first_ok = True
    except (ValueError, RecursionError):
        first_ok = False
    if not first_ok:  # a pretty-printed single document (or garbage): the whole text is one record
        line = first + 1
        try:
            yield JsonRecord(f"{source}:{line}", line, text, json.loads(text))
        except (ValueError, RecursionError) as exc:
            yield JsonRecord(f"{source}:{line}", line, text, error=_decode_error(exc))
        return
    for number, line_text in enumerate(lines, start=1):
        if not line_text.strip():
            continue
        try:
            yield JsonRecord(f"{source}:{number}", number, line_text, json.loads(line_text))
        except (ValueError, RecursionError) as exc:
            yield JsonRecord(f"{source}:{number}", number, line_text, error=_decode_error(exc))


def _map_records(records: Iterator[JsonRecord], mapper: Any = map_litellm_payload) -> list[dict[str, Any] | Rejected]:
    out: list[dict[str, Any] | Rejected] = []
    for record in records:
        if record.error is not None:
            out.append(_reject(record.where, record.error, record.raw, record.line))
            continue
        try:
            out.extend(mapper(record.value))
        except MappingError as exc:
            out.append(_reject(record.where, str(exc), record.raw, record.line))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
            out.append(_reject(record.where, f"cannot map record: {type(exc).__name__}: {exc}", record.raw,
                               record.line))
    return out


# ---- push receiver ---------------------------------------------------------------------------------


def _header(headers: Mapping[str, str] | Any, name: str) -> str:
    """A header value, case-insensitively, from a dict, httpx.Headers or http.server's message."""
    try:
        items = headers.items()
    except AttributeError:
        return ""
    for key, value in items:
        if isinstance(key, str) and key.lower() == name:
            return value if isinstance(value, str) else ""
    return ""


def bearer_ok(headers: Mapping[str, str] | Any, expected: str) -> bool:
    """`Authorization: Bearer <expected>`, compared in constant time; an empty expectation refuses all."""
    given = _header(headers, "authorization")
    if not expected or not given.startswith("Bearer "):
        return False
    return hmac.compare_digest(given[7:].strip().encode("utf-8"), expected.encode("utf-8"))


def parse_push(headers: Mapping[str, str] | Any, body: bytes,
               config: LLMGatewayConfig | None = None) -> list[dict[str, Any] | Rejected]:
    """A `generic_api` push (JSON array, NDJSON or a single object) -> events and Rejected records.

    Checks the bearer token when `config.receiver_token_env` is set (constant time; an unset token
    refuses every push), caps the body at `config.max_body_bytes`, and rejects each bad record with
    its reason and raw text; never raises on bad input.
    """
    config = config or LLMGatewayConfig()
    source = f"{config.name}:push"
    if not isinstance(body, bytes | bytearray):
        return [_reject(source, f"body must be bytes, got {type(body).__name__}", b"")]
    body = bytes(body)
    expected = config.receiver_token()
    if expected is not None and not bearer_ok(headers, expected):
        reason = ("receiver token env var is not set; refusing every push" if not expected
                  else "missing or wrong bearer token")
        return [_reject(source, f"unauthenticated push ({len(body)} bytes not read): {reason}", b"")]
    if len(body) > config.max_body_bytes:
        return [_reject(source, f"body is {len(body)} bytes, over the {config.max_body_bytes}-byte limit",
                        body[:4096])]
    encoding = _header(headers, "content-encoding").strip().lower()
    if encoding not in ("", "identity"):
        return [_reject(source, f"unsupported Content-Encoding {encoding[:32]!r}", body[:4096])]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [_reject(source, f"body is not UTF-8 (byte {exc.start})", body)]
    return _map_records(iter_json_records(text, source))


# ---- replay -----------------------------------------------------------------------------------------


def replay(path: str | Path, mapper: Any = map_litellm_payload) -> Iterator[dict[str, Any] | Rejected]:
    """Events from a file of StandardLoggingPayloads (NDJSON, JSON array, or one object).

    Every bad record becomes a Rejected naming `file:line`. `mapper=map_spend_log` replays exported
    spend-log rows instead.
    """
    path = Path(path)
    source = str(path)
    data = read_replay_file(path, MAX_REPLAY_FILE_BYTES)
    if isinstance(data, Rejected):
        yield data
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        yield from _replay_lines(data, source, mapper)
        return
    yield from _map_records(iter_json_records(text, source), mapper)


def _replay_lines(data: bytes, source: str, mapper: Any) -> Iterator[dict[str, Any] | Rejected]:
    """NDJSON with some lines not UTF-8: those lines are rejected, the rest are read."""
    for number, raw_line in enumerate(data.split(b"\n"), start=1):
        if not raw_line.strip():
            continue
        where = f"{source}:{number}"
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield _reject(where, f"line is not UTF-8 (byte {exc.start})", raw_line, number)
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as exc:
            yield _reject(where, _decode_error(exc), raw_line, number)
            continue
        yield from _map_records(iter([JsonRecord(where, number, line, value)]), mapper)


# ---- pull: /spend/logs/v2 -----------------------------------------------------------------------------


class LLMGatewayCollector:
    """The LLM gateway source: push parsing, spend-log pulls with a cursor, and replay."""

    def __init__(self, config: LLMGatewayConfig | None = None) -> None:
        self.config = config or LLMGatewayConfig()
        self.name = self.config.name

    def parse_push(self, headers: Mapping[str, str] | Any, body: bytes) -> list[dict[str, Any] | Rejected]:
        return parse_push(headers, body, self.config)

    def replay(self, path: Path) -> Iterator[dict[str, Any] | Rejected]:
        return replay(path)

    def pull(self, cursor: CursorStore | None = None, now: datetime | None = None,
             client: Any = None) -> Iterator[dict[str, Any] | Rejected]:
        """Spend-log rows since the cursor (default: `pull_lookback_seconds` ago) up to now, oldest first.

        The window overlaps the previous one by a minute (rows land late); deterministic event ids
        make the overlap harmless. The cursor moves only after every page was read. Transport and
        HTTP errors raise (httpx.HTTPError) and leave the cursor where it was; a bad row is Rejected.
        """
        import httpx

        if not self.config.pull_url:
            raise ValueError(f"collector {self.name!r} has no pull_url")
        key = os.environ.get(self.config.pull_key_env)
        if not key:
            raise ValueError(f"env var {self.config.pull_key_env} (the proxy key for /spend/logs/v2) is not set")
        end = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        cursor_name = f"{self.name}:spend_logs"
        previous = cursor.get(cursor_name) if cursor else None
        start = (datetime.fromisoformat(previous) - timedelta(minutes=1)) if previous else \
            end - timedelta(seconds=self.config.pull_lookback_seconds)
        url = self.config.pull_url.rstrip("/") + "/spend/logs/v2"
        own = client is None
        client = client or httpx.Client(verify=self.config.verify_tls, timeout=self.config.timeout_seconds)
        try:
            page = 1
            while True:
                params = {"start_date": start.strftime("%Y-%m-%d %H:%M:%S"),
                          "end_date": end.strftime("%Y-%m-%d %H:%M:%S"), "page": page,
                          "page_size": self.config.pull_page_size, "sort_by": "startTime", "sort_order": "asc"}
                response = client.get(url, params=params, headers={"Authorization": f"Bearer {key}"})
                response.raise_for_status()
                body = response.json()
                rows = body.get("data") if isinstance(body, dict) else None
                if not isinstance(rows, list):
                    yield _reject(f"{url}?page={page}", "response has no 'data' list", response.content)
                    return
                for i, row in enumerate(rows):
                    where = f"{url}?page={page}#{i}"
                    try:
                        yield from map_spend_log(row)
                    except MappingError as exc:
                        yield _reject(where, str(exc), json.dumps(row, default=str))
                total_pages = body.get("total_pages")
                if not rows or not isinstance(total_pages, int) or page >= total_pages:
                    break
                page += 1
        finally:
            if own:
                client.close()
        if cursor:
            cursor.set(cursor_name, end.isoformat())


# ---- any OpenAI-compatible gateway --------------------------------------------------------------------


class ExchangeMeta(BaseModel):
    """What an OpenAI-compatible gateway knows about one exchange beyond the request and response."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(default="openai_compatible", max_length=64, description="event.provider")
    timestamp: datetime | float | str = Field(description="When the request started (datetime, epoch s or ISO).")
    duration_ms: float | None = Field(default=None, ge=0, le=86_400_000)
    status_code: int | None = Field(default=None, ge=100, le=599)
    request_id: str | None = Field(default=None, max_length=256, description="Gateway's id for the exchange.")
    api_key: SecretStr | None = Field(default=None, description="The caller's key; only its sha256 is kept.")
    api_key_hash: str | None = Field(default=None, max_length=128)
    api_key_alias: str | None = Field(default=None, max_length=256)
    team: str | None = Field(default=None, max_length=256)
    end_user: str | None = Field(default=None, max_length=256)
    source_ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=MAX_TEXT_FIELD)
    url_path: str | None = Field(default="/v1/chat/completions", max_length=MAX_TEXT_FIELD)
    system: str | None = Field(default=None, max_length=64, description="gen_ai.system, e.g. openai")


def map_openai_exchange(request: dict[str, Any], response: dict[str, Any] | None,
                        meta: ExchangeMeta | dict[str, Any]) -> dict[str, Any]:
    """A chat/text completion request and its response -> one `llm-request` event. Raises MappingError.

    Outcome: failure when the status code is >= 400 or the response is an `{"error": ...}` body,
    success when the status is < 400 or a response body came back, else unknown. A naive
    `meta.timestamp` is taken as UTC. Logprobs in the response give `aisoc.inference.confidence`
    and `aisoc.inference.margin` (see `logprob_confidence`). The raw key in `meta.api_key` is
    hashed at once and never stored.
    """
    if isinstance(meta, dict):
        try:
            meta = ExchangeMeta.model_validate(meta)
        except ValidationError as exc:
            raise MappingError(f"exchange meta: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    if not isinstance(request, dict):
        raise MappingError(f"request must be a JSON object, got {type(request).__name__}")
    if response is not None and not isinstance(response, dict):
        raise MappingError(f"response must be a JSON object, got {type(response).__name__}")
    answered_at_all = response is not None
    response = response or {}
    when = meta.timestamp
    if isinstance(when, datetime):
        when = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    start = _time(when, "timestamp")
    error = response.get("error") if isinstance(response.get("error"), dict) else None
    if (meta.status_code is not None and meta.status_code >= 400) or error is not None:
        status = "failure"
    elif (meta.status_code is not None and meta.status_code < 400) or (answered_at_all and response):
        status = "success"
    else:
        status = "unknown"  # no status and no response body captured (e.g. a dropped stream)
    params, invalid = parameter_fields(request)
    usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
    key = meta.api_key.get_secret_value() if meta.api_key else None
    key_fields, _ = api_key_fields(sha256_hex(key) if key else meta.api_key_hash, meta.api_key_alias)
    end_user = meta.end_user or _text(request.get("user"), "request.user", 256)
    model = _text(request.get("model"), "request.model", 256)
    answered = _text(response.get("model"), "response.model", 256)
    prompt = request.get("messages") if request.get("messages") is not None else request.get("prompt")
    resp = response_fields(response)
    identity = meta.request_id or resp.get("gen_ai.response.id")
    if identity is None:
        identity = sha256_hex(json.dumps([request, response], sort_keys=True, default=str))
    key_hash = key_fields.get("aisoc.api_key.hash")
    source_ip = _ip(meta.source_ip)
    if meta.source_ip and source_ip is None:
        invalid.append("source_ip")
    fields: dict[str, Any] = {
        "event.category": ["api"],
        "event.type": _event_types(status, None),
        "event.duration": int(meta.duration_ms * 1_000_000) if meta.duration_ms is not None else None,
        "gen_ai.operation.name": "chat" if request.get("messages") is not None else "text_completion",
        "gen_ai.system": meta.system,
        "gen_ai.request.model": model,
        "gen_ai.response.model": answered if status == "success" else None,
        "gen_ai.usage.input_tokens": _count(usage.get("prompt_tokens"), "usage.prompt_tokens"),
        "gen_ai.usage.output_tokens": _count(usage.get("completion_tokens"), "usage.completion_tokens"),
        "aisoc.llm.total_tokens": _count(usage.get("total_tokens"), "usage.total_tokens"),
        "aisoc.llm.end_user": end_user,
        **prompt_fields(prompt),
        **resp,
        **params,
        **key_fields,
        "aisoc.api_key.team": meta.team,
        "organization.name": meta.team,
        "source.ip": source_ip,
        "user_agent.original": meta.user_agent,
        "url.path": meta.url_path,
        "http.response.status_code": meta.status_code,
        "error.type": _text(error.get("type"), "error.type", 256) if error else None,
        "error.message": str(error.get("message"))[:MAX_TEXT_FIELD] if error and error.get("message") else None,
        "related.user": [end_user] if end_user else [],
        "related.hash": [key_hash] if key_hash else [],
        "tags": [f"invalid-field:{k}" for k in invalid],
        "message": f"LLM call {model or '?'} {status}",
    }
    original = {"request": request, "response": response}
    return make_event(layer=LAYER, provider=meta.provider, action=ACTION, record_id=(identity,),
                      timestamp=start, fields=fields, original=original, outcome=status)
