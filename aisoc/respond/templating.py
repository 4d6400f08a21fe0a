"""The playbook parameter language: `${field.name}` substitution and nothing else (no expressions, no eval).

- `${aisoc.model.name}` is the alert's field (flat dotted or nested alert); `${vars.model_root}` is a
  deployment variable from the response context (paths, key files: things a playbook should not
  hard-code).
- `${a|b}` takes the first of the fields that the alert has.
- `${field?}` as the whole value makes the parameter optional: it is left out (the action's
  default applies) when the alert lacks the field.
- A parameter that is exactly one `${...}` keeps the value's type (a list stays a list, a number a
  number); inside a longer string the value is spliced in as text.
- `$${` writes a literal `${`.

Alert values are attacker-influenced (model names, user names, file paths come from the systems
being watched). Spliced into a longer string they may not contain `/`, `\\`, a `..` segment or
control characters, so `${vars.model_root}/${aisoc.model.name}` cannot be walked out of the
model root. A whole-value template passes the value as it is (to a JSON API, say).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aisoc.rules.model import flatten_event

_TOKEN = re.compile(r"\$(\$?)\{([^{}]*)\}")
_FIELD = re.compile(r"^@?[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
OMIT = object()  # sentinel: drop this parameter


class TemplateError(ValueError):
    """A template names a field the alert lacks, or is malformed, or splices an unsafe value."""


def flat_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Nested or dotted document -> dotted keys."""
    return flatten_event(dict(doc))


def _parse(expr: str) -> tuple[list[str], bool]:
    body = expr.strip()
    optional = body.endswith("?")
    if optional:
        body = body[:-1].rstrip()
    names = [part.strip() for part in body.split("|")]
    if not names or any(not _FIELD.match(n) for n in names):
        raise TemplateError(f"'${{{expr}}}' is not a field reference (write ${{field.name}} or ${{a|b}})")
    return names, optional


def references(value: Any) -> list[tuple[list[str], bool]]:
    """Every `${...}` in a parameter value (recursing into lists and mappings): (alternatives, optional)."""
    found: list[tuple[list[str], bool]] = []
    if isinstance(value, str):
        for match in _TOKEN.finditer(value):
            if not match.group(1):
                found.append(_parse(match.group(2)))
    elif isinstance(value, list | tuple):
        for item in value:
            found.extend(references(item))
    elif isinstance(value, Mapping):
        for item in value.values():
            found.extend(references(item))
    return found


def is_templated(value: Any) -> bool:
    """Does the value contain a `${...}` (valid or not)?"""
    if isinstance(value, str):
        return any(not m.group(1) for m in _TOKEN.finditer(value))
    if isinstance(value, list | tuple):
        return any(is_templated(v) for v in value)
    if isinstance(value, Mapping):
        return any(is_templated(v) for v in value.values())
    return False


def check_template(value: Any) -> list[str]:
    """Problems with the templates in a parameter value, without an alert (for validation)."""
    problems: list[str] = []
    try:
        refs = references(value)
    except TemplateError as exc:
        return [str(exc)]
    if isinstance(value, str):
        whole = _TOKEN.fullmatch(value.strip()) is not None and not value.strip().startswith("$$")
        if not whole and any(optional for _, optional in refs):
            problems.append(f"{value!r}: '?' (optional) is only allowed when the whole value is one ${{...}}")
    return problems


def _lookup(names: list[str], fields: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
    for name in names:
        if name.startswith("vars."):
            key = name[len("vars."):]
            if key in variables and variables[key] is not None:
                return variables[key], False
            continue
        value = fields.get(name)
        if value is not None and value != [] and value != "":
            return value, True
    return OMIT, False


def _splice_safe(name: str, value: Any) -> str:
    if isinstance(value, list | tuple):
        if len(value) != 1:
            raise TemplateError(f"${{{name}}} holds {len(value)} values; only a single value can be spliced into text")
        value = value[0]
    if isinstance(value, Mapping):
        raise TemplateError(f"${{{name}}} is an object; only a single value can be spliced into text")
    text = str(value)
    if any(ch in text for ch in "/\\") or any(ord(ch) < 0x20 or ch == "\x7f" for ch in text) \
            or text in (".", ".."):
        raise TemplateError(f"alert value of ${{{name}}} ({text[:80]!r}) contains a path separator, '..' or a "
                            "control character; it cannot be spliced into a string")
    return text


def render(value: Any, alert: Mapping[str, Any], variables: Mapping[str, Any] | None = None) -> Any:
    """Substitute the templates in one parameter value; returns `OMIT` for an absent optional value."""
    fields = flat_fields(alert)
    variables = variables or {}
    if isinstance(value, list | tuple):
        items = [render(v, fields, variables) for v in value]
        return [i for i in items if i is not OMIT]
    if isinstance(value, Mapping):
        rendered = {k: render(v, fields, variables) for k, v in value.items()}
        return {k: v for k, v in rendered.items() if v is not OMIT}
    if not isinstance(value, str):
        return value
    whole = _TOKEN.fullmatch(value)
    if whole and not whole.group(1):
        names, optional = _parse(whole.group(2))
        found, _ = _lookup(names, fields, variables)
        if found is OMIT:
            if optional:
                return OMIT
            raise TemplateError(f"the alert has no {' or '.join(names)} (needed by {value!r})")
        return found

    def substitute(match: re.Match[str]) -> str:
        if match.group(1):
            return "${" + match.group(2) + "}"
        names, optional = _parse(match.group(2))
        if optional:
            raise TemplateError(f"{value!r}: '?' is only allowed when the whole value is one ${{...}}")
        found, from_alert = _lookup(names, fields, variables)
        if found is OMIT:
            raise TemplateError(f"the alert has no {' or '.join(names)} (needed by {value!r})")
        return _splice_safe("|".join(names), found) if from_alert else str(found)

    return _TOKEN.sub(substitute, value)


def render_params(params: Mapping[str, Any], alert: Mapping[str, Any],
                  variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Render every parameter of a step; optional parameters whose field is absent are dropped."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        rendered = render(value, alert, variables)
        if rendered is not OMIT:
            out[key] = rendered
    return out
