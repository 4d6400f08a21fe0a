"""`rollback_model_alias`: point a registered model's alias back at the last known-good version in MLflow.

MLflow REST API 2.0: `GET/POST/DELETE registered-models/alias`, `GET model-versions/search`.

- Known-good: the highest version *below* the alias's current version that carries the tag
  `aisoc.known_good=true` (tag name and value are settings), or the version given in `version`.
- Optionally `shadow_alias` (e.g. `challenger`) is set on the suspect version, so it can keep
  running in shadow/canary for validation while the known-good version serves.
- `expected_current`: refuse if the alias no longer points at the version the alert was about.
- Undo puts the alias (and the shadow alias) back where they were, but only if nobody has moved
  them since; otherwise it refuses and says so.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field

from aisoc.respond.actions import _http
from aisoc.respond.actions.base import Action, ActionError, Change, Params, Result
from aisoc.respond.context import MlflowSettings

API = "/api/2.0/mlflow"


class MlflowError(ActionError):
    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class MlflowRegistry:
    """The few MLflow model-registry calls the rollback needs."""

    def __init__(self, settings: MlflowSettings, secrets: Any) -> None:
        headers: dict[str, str] = {}
        auth = None
        if settings.token_env:
            headers["Authorization"] = "Bearer " + secrets.from_env(settings.token_env, "MLflow token")
        elif settings.username_env and settings.password_env:
            auth = httpx.BasicAuth(secrets.from_env(settings.username_env, "MLflow user"),
                                   secrets.from_env(settings.password_env, "MLflow password"))
        self.http = _http.client(settings.url, verify=settings.verify, ca_file=settings.ca_file,
                                 timeout=settings.timeout, headers=headers, auth=auth)

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self.http.request(method, API + path, params=params, json=body)
        except httpx.HTTPError as exc:
            raise MlflowError(f"MLflow unreachable ({type(exc).__name__}: {exc})") from None
        if response.status_code >= 400:
            try:
                code = str(response.json().get("error_code", ""))
            except (ValueError, AttributeError):
                code = ""
            raise MlflowError(f"MLflow {method} {path}: HTTP {response.status_code} {_http.error_text(response)}",
                              code, response.status_code)
        try:
            data = response.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def get_alias(self, model: str, alias: str) -> str | None:
        """The version the alias points at, or None when the alias is not set."""
        try:
            data = self._call("GET", "/registered-models/alias", params={"name": model, "alias": alias})
        except MlflowError as exc:
            # MLflow answers a missing alias with INVALID_PARAMETER_VALUE "... alias X not found."
            if exc.code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc):
                return None
            raise
        version = (data.get("model_version") or {}).get("version")
        return str(version) if version is not None else None

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self._call("POST", "/registered-models/alias", body={"name": model, "alias": alias, "version": version})

    def delete_alias(self, model: str, alias: str) -> None:
        self._call("DELETE", "/registered-models/alias", body={"name": model, "alias": alias})

    def versions(self, model: str) -> list[dict[str, Any]]:
        """Every version of a model (all pages)."""
        quote = "'" if "'" not in model else '"'
        if quote in model:
            raise MlflowError(f"model name {model!r} contains both quote characters; cannot search for it")
        out: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(1000):
            params: dict[str, Any] = {"filter": f"name={quote}{model}{quote}", "max_results": 200}
            if token:
                params["page_token"] = token
            data = self._call("GET", "/model-versions/search", params=params)
            out.extend(data.get("model_versions") or [])
            token = data.get("next_page_token")
            if not token:
                break
        return out

    def close(self) -> None:
        self.http.close()


def _tags(version: dict[str, Any]) -> dict[str, str]:
    return {str(t.get("key")): str(t.get("value")) for t in version.get("tags") or [] if isinstance(t, dict)}


def _int(version: Any) -> int:
    try:
        return int(str(version))
    except ValueError:
        raise ActionError(f"model version {version!r} is not a number") from None


class RollbackParams(Params):
    model: str = Field(min_length=1, max_length=500)
    alias: str = Field("champion", min_length=1, max_length=255)
    version: str | int | None = Field(None, description="roll back to this version instead of the last known-good")
    expected_current: str | int | None = Field(None, description="refuse unless the alias points here now")
    shadow_alias: str | None = Field(None, min_length=1, max_length=255,
                                     description="alias to put on the suspect version for shadow validation")
    known_good_tag: str | None = None
    known_good_value: str | None = None


class RollbackModelAlias(Action):
    """Point a model alias at the last known-good version (and the suspect version at a shadow alias)."""

    name = "rollback_model_alias"
    Params = RollbackParams
    undoable = True
    description = "Roll an MLflow model alias back to the last known-good version"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._registry: MlflowRegistry | None = None

    @property
    def registry(self) -> MlflowRegistry:
        if self._registry is None:
            if self.context.mlflow is None:
                raise ActionError("rollback_model_alias: no MLflow configured (context.mlflow)")
            self._registry = MlflowRegistry(self.context.mlflow, self.context.secrets)
        return self._registry

    def _target_version(self, p: RollbackParams, current: str) -> str:
        versions = self.registry.versions(p.model)
        known = {str(v.get("version")): v for v in versions}
        if p.version is not None:
            wanted = str(p.version)
            if wanted not in known:
                raise ActionError(f"{p.model} has no version {wanted}")
            if wanted == current:
                raise ActionError(f"alias already points at version {wanted}")
            return wanted
        settings = self.context.mlflow
        tag = p.known_good_tag or (settings.known_good_tag if settings else "aisoc.known_good")
        value = p.known_good_value or (settings.known_good_value if settings else "true")
        below = [v for v in versions if _int(v.get("version")) < _int(current)
                 and _tags(v).get(tag, "").lower() == value.lower()]
        if not below:
            raise ActionError(f"{p.model} has no version below {current} tagged {tag}={value}; "
                              "tag a known-good version or give `version`")
        return str(max(below, key=lambda v: _int(v.get("version")))["version"])

    def plan(self, params: dict[str, Any] | Params) -> Change:
        p: RollbackParams = self.parse(params)
        if p.shadow_alias and p.shadow_alias == p.alias:
            raise ActionError("shadow_alias must differ from alias")
        current = self.registry.get_alias(p.model, p.alias)
        if current is None:
            raise ActionError(f"models:/{p.model}@{p.alias} is not set; there is nothing to roll back")
        if p.expected_current is not None and str(p.expected_current) != current:
            raise ActionError(f"models:/{p.model}@{p.alias} points at version {current}, not "
                              f"{p.expected_current} as the alert says; refusing to move it")
        target = self._target_version(p, current)
        before: dict[str, Any] = {p.alias: current}
        after: dict[str, Any] = {p.alias: target}
        if p.shadow_alias:
            before[p.shadow_alias] = self.registry.get_alias(p.model, p.shadow_alias)
            after[p.shadow_alias] = current
        summary = f"models:/{p.model}@{p.alias}: version {current} -> {target}"
        if p.shadow_alias:
            summary += f"; @{p.shadow_alias} -> {current} (suspect, for shadow validation)"
        return Change(self.name, f"models:/{p.model}@{p.alias}", before, after, summary)

    def apply(self, params: dict[str, Any] | Params) -> Result:
        p: RollbackParams = self.parse(params)
        change = self.plan(p)
        self.registry.set_alias(p.model, p.alias, change.after[p.alias])
        if p.shadow_alias:
            try:
                self.registry.set_alias(p.model, p.shadow_alias, change.after[p.shadow_alias])
            except ActionError:
                self.registry.set_alias(p.model, p.alias, change.before[p.alias])  # leave nothing half-done
                raise
        undo = {"model": p.model, "aliases": {name: {"previous": change.before[name], "set_to": change.after[name]}
                                              for name in change.before}}
        return Result(self.name, change.target, change.before, change.after, True, undo,
                      {"summary": change.summary})

    def undo(self, result: Result) -> None:
        model = result.undo_data["model"]
        moved: list[str] = []
        for alias, state in result.undo_data["aliases"].items():
            now = self.registry.get_alias(model, alias)
            if now != state["set_to"]:
                moved.append(f"@{alias} is now {now} (we set {state['set_to']})")
        if moved:
            raise ActionError(f"models:/{model}: not undoing, someone moved the aliases since: {'; '.join(moved)}")
        for alias, state in result.undo_data["aliases"].items():
            if state["previous"] is None:
                self.registry.delete_alias(model, alias)
            else:
                self.registry.set_alias(model, alias, state["previous"])

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
