"""API-key actions at the LiteLLM proxy: `throttle_api_key`, `block_api_key`, `rotate_api_key`.

They call the proxy's documented key-management API with the master key (read from the environment
variable named in `LiteLLMSettings.master_key_env`, never logged):

- `GET /key/info?key=K` -> `{"key": K, "info": {rpm_limit, tpm_limit, blocked, key_alias, ...}}`
- `POST /key/update {"key": K, "rpm_limit": n, "tpm_limit": n}` (null clears a limit)
- `POST /key/block {"key": K}` / `POST /key/unblock {"key": K}`
- `POST /key/{K}/regenerate` (Enterprise) -> `{"key": "sk-<new>", "token_id": "<hash>", ...}`, or
  for open-source proxies `POST /key/generate` + `POST /key/delete {"keys": [K]}` (`mode: replace`).

`K` may be the raw key (`sk-...`) or, as aisoc's alerts carry it (`aisoc.api_key.hash`, LiteLLM's
`user_api_key_hash`), the SHA-256 hash LiteLLM stores: every one of these endpoints accepts either.
Each call sends `litellm-changed-by: <approver>` so LiteLLM's own audit trail names the approver.

**The real proxy serves these endpoints only with its Postgres database** (`DATABASE_URL`);
without it they fail with "DB not connected". aisoc's tests therefore replay LiteLLM's documented
request/response shapes from a local HTTP server, not the proxy itself.

Throttling never loosens an existing stricter limit; undo restores the previous limits (and
unblocks only a key it blocked), refusing if the limits were changed by someone else meanwhile.
Rotation cannot be undone (the old key is revoked); the new key is written to a 0600 file under
`secrets_dir` for its owner and only its hash is recorded.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import Field, model_validator

from aisoc.respond.actions import _http
from aisoc.respond.actions.base import Action, ActionError, Change, Params, Result
from aisoc.respond.context import LiteLLMSettings

# Properties copied onto the replacement key in `replace` mode.
_COPY_ON_REPLACE = ("models", "team_id", "user_id", "metadata", "max_budget", "budget_duration", "tpm_limit",
                    "rpm_limit", "max_parallel_requests", "aliases", "permissions", "model_max_budget",
                    "model_rpm_limit", "model_tpm_limit", "guardrails", "tags", "organization_id")


def key_hash(key: str) -> str:
    """LiteLLM's stored token for a key: sha256 hex of a raw `sk-` key; a hash stays as it is."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest() if key.startswith("sk-") else key


def key_label(key: str) -> str:
    return f"litellm key {key_hash(key)[:12]}"


class LiteLLMError(ActionError):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class LiteLLMKeys:
    """The LiteLLM proxy's key-management endpoints."""

    def __init__(self, settings: LiteLLMSettings, secrets: Any, changed_by: str | None = None) -> None:
        master = secrets.from_env(settings.master_key_env, "LiteLLM master key")
        headers = {"Authorization": f"Bearer {master}"}
        if changed_by:
            headers["litellm-changed-by"] = re.sub(r"[^\x20-\x7e]", "?", changed_by)[:200]
        self.secrets = secrets
        self.http = _http.client(settings.url, verify=settings.verify, ca_file=settings.ca_file,
                                 timeout=settings.timeout, headers=headers)

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, params=params, json=body)
        except httpx.HTTPError as exc:
            raise LiteLLMError(f"LiteLLM proxy unreachable ({type(exc).__name__}: {exc})") from None
        where = "/key/<key>/regenerate" if path.endswith("/regenerate") else path
        if response.status_code >= 400:
            raise LiteLLMError(f"LiteLLM {method} {where}: HTTP {response.status_code} "
                               f"{self.secrets.scrub(_http.error_text(response))}", response.status_code)
        try:
            data = response.json()
        except ValueError:
            raise LiteLLMError(f"LiteLLM {method} {where}: answer is not JSON") from None
        return data if isinstance(data, dict) else {"data": data}

    def info(self, key: str) -> dict[str, Any]:
        data = self._call("GET", "/key/info", params={"key": key})
        info = data.get("info")
        if not isinstance(info, dict):
            raise LiteLLMError(f"{key_label(key)}: /key/info returned no info")
        return info

    def update(self, key: str, **fields: Any) -> dict[str, Any]:
        return self._call("POST", "/key/update", body={"key": key, **fields})

    def block(self, key: str) -> dict[str, Any]:
        return self._call("POST", "/key/block", body={"key": key})

    def unblock(self, key: str) -> dict[str, Any]:
        return self._call("POST", "/key/unblock", body={"key": key})

    def regenerate(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/key/{quote(key, safe='')}/regenerate", body=body)

    def generate(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/key/generate", body=body)

    def delete(self, keys: list[str]) -> dict[str, Any]:
        return self._call("POST", "/key/delete", body={"keys": keys})

    def close(self) -> None:
        self.http.close()


class _KeyAction(Action):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys: LiteLLMKeys | None = None

    @property
    def keys(self) -> LiteLLMKeys:
        if self._keys is None:
            if self.context.litellm is None:
                raise ActionError(f"{self.name}: no LiteLLM proxy configured (context.litellm)")
            self._keys = LiteLLMKeys(self.context.litellm, self.context.secrets,
                                     self.run.approved_by or self.context.actor)
        return self._keys

    def _register(self, key: str) -> None:
        if key.startswith("sk-"):
            self.context.secrets.register(key)

    def close(self) -> None:
        if self._keys is not None:
            self._keys.close()


# ------------------------------------------------------------------------------------------ throttle

class ThrottleParams(Params):
    key: str = Field(min_length=8, description="API key hash (or raw sk- key)")
    rpm_limit: int | None = Field(None, ge=0, description="requests per minute")
    tpm_limit: int | None = Field(None, ge=0, description="tokens per minute")
    never_loosen: bool = Field(True, description="keep an existing lower limit")

    @model_validator(mode="after")
    def _some_limit(self) -> ThrottleParams:
        if self.rpm_limit is None and self.tpm_limit is None:
            raise ValueError("give rpm_limit, tpm_limit or both")
        return self


class ThrottleApiKey(_KeyAction):
    """Set (tighten) the key's requests- and tokens-per-minute limits at the gateway."""

    name = "throttle_api_key"
    Params = ThrottleParams
    undoable = True
    description = "Rate-limit an API key at the LiteLLM proxy"

    def plan(self, params: dict[str, Any] | Params) -> Change:
        p: ThrottleParams = self.parse(params)
        self._register(p.key)
        info = self.keys.info(p.key)
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for name in ("rpm_limit", "tpm_limit"):
            wanted = getattr(p, name)
            if wanted is None:
                continue
            current = info.get(name)
            before[name] = current
            after[name] = min(current, wanted) if (p.never_loosen and isinstance(current, int)) else wanted
        target = key_label(p.key)
        return Change(self.name, target, before, after,
                      f"{target}: " + ", ".join(f"{k} {before[k]} -> {after[k]}" for k in after))

    def apply(self, params: dict[str, Any] | Params) -> Result:
        p: ThrottleParams = self.parse(params)
        change = self.plan(p)
        if change.noop:
            return Result(self.name, change.target, change.before, change.after, False, {},
                          {"summary": "limits already at or below the throttle"})
        self.keys.update(p.key, **change.after)
        return Result(self.name, change.target, change.before, change.after, True,
                      {"key": p.key, "before": change.before, "after": change.after}, {"summary": change.summary})

    def undo(self, result: Result) -> None:
        if not result.changed:
            return
        key = result.undo_data["key"]
        info = self.keys.info(key)
        now = {name: info.get(name) for name in result.undo_data["after"]}
        if now != result.undo_data["after"]:
            raise ActionError(f"{key_label(key)}: limits changed since the throttle ({now}); not restoring")
        self.keys.update(key, **result.undo_data["before"])


# ------------------------------------------------------------------------------------------- block

class KeyParams(Params):
    key: str = Field(min_length=8, description="API key hash (or raw sk- key)")


class BlockApiKey(_KeyAction):
    """Block the key at the gateway: every request with it is refused until unblocked."""

    name = "block_api_key"
    Params = KeyParams
    undoable = True
    description = "Block an API key at the LiteLLM proxy"

    def plan(self, params: dict[str, Any] | Params) -> Change:
        p: KeyParams = self.parse(params)
        self._register(p.key)
        info = self.keys.info(p.key)
        blocked = bool(info.get("blocked"))
        target = key_label(p.key)
        return Change(self.name, target, {"blocked": blocked}, {"blocked": True},
                      f"{target}: blocked {blocked} -> True")

    def apply(self, params: dict[str, Any] | Params) -> Result:
        p: KeyParams = self.parse(params)
        change = self.plan(p)
        if change.noop:
            return Result(self.name, change.target, change.before, change.after, False, {},
                          {"summary": "already blocked"})
        answer = self.keys.block(p.key)
        if answer.get("blocked") is False:
            raise ActionError(f"{change.target}: the proxy did not block the key")
        return Result(self.name, change.target, change.before, change.after, True, {"key": p.key},
                      {"summary": change.summary})

    def undo(self, result: Result) -> None:
        if result.changed:
            self.keys.unblock(result.undo_data["key"])


# ------------------------------------------------------------------------------------------ rotate

class RotateParams(Params):
    key: str = Field(min_length=8, description="API key hash (or raw sk- key)")
    mode: Literal["regenerate", "replace"] = Field(
        "regenerate", description="regenerate: /key/{key}/regenerate (Enterprise); replace: generate + delete")
    grace_period: str | None = Field(None, description="keep the old key valid this long (regenerate, e.g. '1h')")
    deliver_to: str | None = Field(None, description="directory for the new key file (default context.secrets_dir)")


def _write_secret(directory: Path, stem: str, secret: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:80] or "key"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{safe}-{stamp}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (secret + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


class RotateApiKey(_KeyAction):
    """Revoke the key and issue its owner a new one with the same settings (cannot be undone)."""

    name = "rotate_api_key"
    Params = RotateParams
    undoable = False
    description = "Rotate an API key at the LiteLLM proxy (old key revoked, new key to a 0600 file)"

    def _deliver_dir(self, p: RotateParams) -> Path:
        directory = Path(p.deliver_to) if p.deliver_to else self.context.secrets_dir
        if directory is None:
            raise ActionError("rotate_api_key: nowhere to put the new key (set context.secrets_dir or deliver_to)")
        return directory

    def plan(self, params: dict[str, Any] | Params) -> Change:
        p: RotateParams = self.parse(params)
        self._register(p.key)
        directory = self._deliver_dir(p)
        info = self.keys.info(p.key)
        target = key_label(p.key)
        alias = info.get("key_alias")
        return Change(self.name, target, {"key": key_hash(p.key)[:12], "key_alias": alias, "valid": True},
                      {"key": "new key", "key_alias": alias, "valid": False, "new_key_file": str(directory)},
                      f"{target}: revoke ({p.mode}) and write a new key under {directory}")

    def apply(self, params: dict[str, Any] | Params) -> Result:
        p: RotateParams = self.parse(params)
        change = self.plan(p)
        directory = self._deliver_dir(p)
        if p.mode == "regenerate":
            answer = self.keys.regenerate(p.key, {"grace_period": p.grace_period} if p.grace_period else {})
            new_key = answer.get("key")
            new_hash = answer.get("token_id") or answer.get("token")
        else:
            new_key, new_hash = self._replace(p)
        if not isinstance(new_key, str) or not new_key:
            raise ActionError(f"{change.target}: the proxy returned no new key")
        self.context.secrets.register(new_key)
        new_hash = str(new_hash or key_hash(new_key))
        path = _write_secret(directory, str(change.before.get("key_alias") or key_hash(p.key)[:12]), new_key)
        after = {"key": new_hash[:12], "key_alias": change.before.get("key_alias"), "valid": True,
                 "old_key_valid": False, "new_key_file": str(path)}
        return Result(self.name, change.target, change.before, after, True, {},
                      {"new_key_hash": new_hash, "new_key_file": str(path), "mode": p.mode})

    def _replace(self, p: RotateParams) -> tuple[str, str | None]:
        info = self.keys.info(p.key)
        body = {k: info[k] for k in _COPY_ON_REPLACE if info.get(k) not in (None, [], {})}
        metadata = dict(body.get("metadata") or {})
        metadata["rotated_from"] = key_hash(p.key)
        body["metadata"] = metadata
        answer = self.keys.generate(body)
        new_key = answer.get("key")
        if not isinstance(new_key, str) or not new_key:
            raise ActionError(f"{key_label(p.key)}: /key/generate returned no key")
        self.context.secrets.register(new_key)
        new_hash = answer.get("token_id") or answer.get("token") or key_hash(new_key)
        try:
            self.keys.delete([p.key])
        except ActionError:
            self.keys.delete([new_key])  # do not leave two live keys behind
            raise
        if info.get("key_alias"):
            self.keys.update(new_key, key_alias=info["key_alias"])
        return new_key, str(new_hash)
