"""The MITRE ATLAS catalog aisoc ships: tactics, techniques, sub-techniques, in matrix order.

The catalog keeps only facts from the official release (IDs, names, tactic short names, tactic
membership, parent technique, matrix order, release version, source). It is generated from the
official data with ``python -m aisoc.atlas.catalog build <ATLAS.yaml or URL>`` and read at run time
from ``atlas/catalog.json`` (never from the official file, never from the network).

Official formats accepted by :func:`parse_official`
----------------------------------------------------
* **Legacy v5 single file** (``dist/ATLAS.yaml``, verified against ATLAS 5.6.0): top-level
  ``id``/``name``/``version`` and ``matrices[]``, each with ``tactics[]`` (matrix order) and
  ``techniques[]``; a top-level technique names its tactics in ``tactics: [AML.TA....]``, a
  sub-technique names its parent in ``subtechnique-of`` and inherits the parent's tactics.
* **Date-versioned v6** (``dist/v6/ATLAS-YYYY.MM.yaml``, format-version 6.x). No copy of a v6 file
  was available, so its shape is taken from public third-party code that reads it (MISP galaxy
  ``tools/gen_mitre_atlas.py``, and other parsers of ``ATLAS-2026.0x.yaml``) and is *assumed*:
  top-level ``format-version`` (e.g. ``6.0.0``), ``collection: {version: "2026.05", ...}``,
  ``matrix: {id: ATLAS, ...}``, ``tactics`` / ``techniques`` as mappings keyed by ID, and
  ``relationships`` keyed by source ID: ``{AML.T0051: {achieves: [{target: AML.TA0005}]},
  AML.T0024.002: {specializes: [{target: AML.T0024}]}, ATLAS: {sequences: [{target: AML.TA0002,
  position: 0}, ...]}}``. The parser is deliberately tolerant: ``format_version`` is accepted
  too, tactics/techniques may be lists or mappings, at top level or under ``matrix``/``matrices``,
  objects are recognised by ``object-type`` or by their ID pattern, tactic membership may come from
  a technique's own ``tactics`` or from ``achieves`` relationships (mapping or list form), the
  parent from ``subtechnique-of``, ``specializes``/``subtechnique-of`` relationships or the dotted
  ID, and the tactic order from the matrix ``sequences``, a matrix ``tactics`` list, or file order.
  Anything it cannot make sense of raises :class:`AtlasFormatError` naming what is missing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import yaml

if TYPE_CHECKING:
    import httpx

__all__ = [
    "AtlasCatalog",
    "AtlasFormatError",
    "Tactic",
    "Technique",
    "load_catalog",
    "parse_official",
    "short_name_for",
    "update_catalog",
]

ATLAS_URL = "https://atlas.mitre.org"
CATALOG_FORMAT = "aisoc-atlas-catalog"
CATALOG_FORMAT_VERSION = 1
MAX_SOURCE_BYTES = 50 * 1024 * 1024
HTTP_TIMEOUT_SECONDS = 60.0

TACTIC_ID_RE = re.compile(r"^AML\.TA\d{4}$")
TECHNIQUE_ID_RE = re.compile(r"^AML\.T\d{4}(?:\.\d{3})?$")
_TAG_TECHNIQUE_RE = re.compile(r"^aml\.t\d{4}(?:\.\d{3})?$")
_TAG_TACTIC_ID_RE = re.compile(r"^aml\.ta\d{4}$")
_SHORT_NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class AtlasFormatError(ValueError):
    """The data is not an ATLAS release (or catalog) this module can read."""


@dataclass(frozen=True)
class Tactic:
    """An ATLAS tactic (an adversary goal), e.g. ``AML.TA0010`` Exfiltration."""

    id: str
    name: str
    short_name: str


@dataclass(frozen=True)
class Technique:
    """An ATLAS technique or sub-technique; a sub-technique carries its parent's tactics."""

    id: str
    name: str
    tactics: tuple[str, ...]
    parent: str | None = None

    @property
    def is_subtechnique(self) -> bool:
        """True for ``AML.Txxxx.yyy`` sub-techniques."""
        return self.parent is not None


def short_name_for(tactic_name: str) -> str:
    """The tactic short name ATLAS uses (STIX ``x_mitre_shortname``): lower case, spaces to '-'."""
    return "-".join(tactic_name.strip().lower().split())


class AtlasCatalog:
    """Tactics and techniques of one ATLAS release, with lookups by ID, short name and Sigma tag."""

    def __init__(
        self,
        version: str,
        source: str,
        tactics: Iterable[Tactic],
        techniques: Iterable[Technique],
    ) -> None:
        self.version = str(version)
        self.source = str(source)
        self.tactics: list[Tactic] = list(tactics)
        self.techniques: dict[str, Technique] = {}
        for tech in techniques:
            if tech.id in self.techniques:
                raise AtlasFormatError(f"duplicate technique id {tech.id}")
            self.techniques[tech.id] = tech
        self._tactic_by_id: dict[str, Tactic] = {}
        self._tactic_by_short: dict[str, Tactic] = {}
        for tac in self.tactics:
            if tac.id.upper() in self._tactic_by_id:
                raise AtlasFormatError(f"duplicate tactic id {tac.id}")
            if tac.short_name in self._tactic_by_short:
                raise AtlasFormatError(f"duplicate tactic short name {tac.short_name!r}")
            self._tactic_by_id[tac.id.upper()] = tac
            self._tactic_by_short[tac.short_name] = tac
        self._techniques_upper = {tid.upper(): t for tid, t in self.techniques.items()}
        self._children: dict[str, list[Technique]] = {}
        for tech in self.techniques.values():
            if tech.parent is not None:
                self._children.setdefault(tech.parent, []).append(tech)
        self._check_references()

    def _check_references(self) -> None:
        for tech in self.techniques.values():
            for tid in tech.tactics:
                if tid.upper() not in self._tactic_by_id:
                    raise AtlasFormatError(f"technique {tech.id} names unknown tactic {tid}")
            if tech.parent is not None:
                parent = self.techniques.get(tech.parent)
                if parent is None:
                    raise AtlasFormatError(f"sub-technique {tech.id} names unknown parent {tech.parent}")
                if parent.parent is not None:
                    raise AtlasFormatError(f"sub-technique {tech.id} has a sub-technique as parent")

    # ----------------------------------------------------------------- lookups

    def tactic(self, id_or_short_name: str) -> Tactic | None:
        """The tactic with this ID (``AML.TA0010``) or short name (``exfiltration``), any case."""
        if not isinstance(id_or_short_name, str):
            return None
        key = id_or_short_name.strip()
        return self._tactic_by_id.get(key.upper()) or self._tactic_by_short.get(key.lower())

    def technique(self, technique_id: str) -> Technique | None:
        """The technique or sub-technique with this ID, any case (``aml.t0051`` works)."""
        if not isinstance(technique_id, str):
            return None
        return self._techniques_upper.get(technique_id.strip().upper())

    def resolve_tag(self, tag: str) -> Tactic | Technique | None:
        """Resolve a Sigma ATLAS tag (``atlas.aml.t0051``, ``atlas.exfiltration``); None if unknown."""
        if not isinstance(tag, str):
            return None
        namespace, sep, name = tag.lower().partition(".")
        if namespace != "atlas" or not sep or not name:
            return None
        if _TAG_TECHNIQUE_RE.match(name):
            return self.technique(name)
        if _TAG_TACTIC_ID_RE.match(name):
            return self._tactic_by_id.get(name.upper())
        if _SHORT_NAME_RE.match(name):
            return self._tactic_by_short.get(name)
        return None

    def subtechniques(self, technique_id: str) -> list[Technique]:
        """Sub-techniques of a technique, in matrix order."""
        tech = self.technique(technique_id)
        return list(self._children.get(tech.id, [])) if tech else []

    def techniques_for_tactic(self, tactic_id: str, *, subtechniques: bool = False) -> list[Technique]:
        """Techniques of a tactic in matrix order (top-level only unless ``subtechniques``)."""
        tac = self.tactic(tactic_id)
        if tac is None:
            return []
        return [
            t
            for t in self.techniques.values()
            if tac.id in t.tactics and (subtechniques or not t.is_subtechnique)
        ]

    def tactic_url(self, t: Tactic | str) -> str:
        """The atlas.mitre.org page of a tactic."""
        tid = t.id if isinstance(t, Tactic) else str(t).strip().upper()
        return f"{ATLAS_URL}/tactics/{tid}/"

    def technique_url(self, t: Technique | str) -> str:
        """The atlas.mitre.org page of a technique or sub-technique (dotted ID)."""
        tid = t.id if isinstance(t, Technique) else str(t).strip().upper()
        return f"{ATLAS_URL}/techniques/{tid}/"

    # ----------------------------------------------------------- serialisation

    def to_json(self) -> dict[str, Any]:
        """The catalog as plain JSON data (what ``atlas/catalog.json`` holds)."""
        return {
            "format": CATALOG_FORMAT,
            "format_version": CATALOG_FORMAT_VERSION,
            "framework": "MITRE ATLAS",
            "version": self.version,
            "source": self.source,
            "license": "Apache-2.0, (c) MITRE; facts extracted from the official ATLAS data",
            "tactics": [{"id": t.id, "name": t.name, "short_name": t.short_name} for t in self.tactics],
            "techniques": [
                {"id": t.id, "name": t.name, "tactics": list(t.tactics), "parent": t.parent}
                for t in self.techniques.values()
            ],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AtlasCatalog:
        """Rebuild a catalog from :meth:`to_json` output; raises AtlasFormatError if malformed."""
        if not isinstance(d, Mapping) or d.get("format") != CATALOG_FORMAT:
            raise AtlasFormatError(f"not an aisoc ATLAS catalog (expected format {CATALOG_FORMAT!r})")
        if d.get("format_version") != CATALOG_FORMAT_VERSION:
            raise AtlasFormatError(
                f"unsupported catalog format_version {d.get('format_version')!r}; "
                f"this aisoc reads version {CATALOG_FORMAT_VERSION}"
            )
        try:
            tactics = [
                Tactic(_checked_id(x["id"], TACTIC_ID_RE, "tactic"), str(x["name"]), str(x["short_name"]))
                for x in d["tactics"]
            ]
            techniques = [
                Technique(
                    _checked_id(x["id"], TECHNIQUE_ID_RE, "technique"),
                    str(x["name"]),
                    tuple(str(t) for t in x["tactics"]),
                    None if x.get("parent") is None else str(x["parent"]),
                )
                for x in d["techniques"]
            ]
            return cls(str(d["version"]), str(d.get("source", "")), tactics, techniques)
        except (KeyError, TypeError) as exc:
            raise AtlasFormatError(f"malformed aisoc ATLAS catalog: missing or bad field {exc}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AtlasCatalog):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        subs = sum(1 for t in self.techniques.values() if t.is_subtechnique)
        return (
            f"AtlasCatalog(version={self.version!r}, tactics={len(self.tactics)}, "
            f"techniques={len(self.techniques) - subs}, subtechniques={subs})"
        )


def _checked_id(value: Any, pattern: re.Pattern[str], kind: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise AtlasFormatError(f"{kind} id {value!r} is not a well-formed ATLAS id")
    return value


# ------------------------------------------------------------------ loading


def _default_catalog_path() -> Path:
    from aisoc.paths import data_path

    return data_path("atlas/catalog.json")


def _read_catalog(path: Path) -> AtlasCatalog:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AtlasFormatError(f"{path}: ATLAS catalog not found") from None
    except json.JSONDecodeError as exc:
        raise AtlasFormatError(f"{path}: not valid JSON ({exc})") from None
    try:
        return AtlasCatalog.from_json(data)
    except AtlasFormatError as exc:
        raise AtlasFormatError(f"{path}: {exc}") from None


@functools.lru_cache(maxsize=1)
def _load_default() -> AtlasCatalog:
    return _read_catalog(_default_catalog_path())


def load_catalog(path: Path | None = None) -> AtlasCatalog:
    """Load the shipped catalog (cached) or the catalog JSON at ``path``."""
    if path is None:
        return _load_default()
    return _read_catalog(Path(path))


# ------------------------------------------------------------ official data


def _yaml_loader() -> type:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_text(text: str | bytes) -> Any:
    if len(text) > MAX_SOURCE_BYTES:
        raise AtlasFormatError(f"ATLAS data is larger than {MAX_SOURCE_BYTES} bytes")
    try:
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise AtlasFormatError(f"ATLAS data is not valid YAML: {exc}") from None


def parse_official(
    text_or_data: str | bytes | Mapping[str, Any] | os.PathLike[str], *, source: str = ""
) -> AtlasCatalog:
    """Parse an official ATLAS release (legacy v5 single file or date-versioned v6).

    Accepts YAML/JSON text, bytes, an already-parsed mapping, or a path-like to a file.
    """
    if isinstance(text_or_data, os.PathLike):
        path = Path(text_or_data)
        source = source or str(path)
        data: Any = _load_text(path.read_bytes())
    elif isinstance(text_or_data, str | bytes):
        data = _load_text(text_or_data)
    else:
        data = text_or_data
    if not isinstance(data, Mapping):
        raise AtlasFormatError(f"ATLAS data must be a mapping at the top level, got {type(data).__name__}")
    fmt = _format_version(data)
    if fmt is not None:
        major = fmt.split(".", 1)[0]
        if major == "6":
            return _parse_v6(data, source)
        if major in {"4", "5"} and "matrices" in data:
            return _parse_v5(data, source)
        raise AtlasFormatError(
            f"unsupported ATLAS format-version {fmt!r}: this aisoc reads the legacy v5 single file "
            "(dist/ATLAS.yaml) and format 6.x (dist/v6/ATLAS-YYYY.MM.yaml)"
        )
    if isinstance(data.get("matrices"), list):
        return _parse_v5(data, source)
    if "collection" in data or "relationships" in data:
        return _parse_v6(data, source)
    raise AtlasFormatError(
        "not an ATLAS release: expected `matrices` (legacy v5 dist/ATLAS.yaml) or "
        "`format-version: 6.x` with tactics and techniques (dist/v6/ATLAS-YYYY.MM.yaml); "
        f"top-level keys are {sorted(map(str, data))[:12]}"
    )


def _format_version(data: Mapping[str, Any]) -> str | None:
    for holder in (data, data.get("collection") if isinstance(data.get("collection"), Mapping) else {}):
        for key in ("format-version", "format_version", "formatVersion"):
            if holder.get(key) is not None:
                return str(holder[key]).strip()
    return None


def _str_field(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str | int | float) or not str(value).strip():
        raise AtlasFormatError(f"{where}: missing `{key}`")
    return str(value).strip()


def _build_tactic(tid: str, obj: Mapping[str, Any]) -> Tactic:
    name = _str_field(obj, "name", f"tactic {tid}")
    return Tactic(tid, name, short_name_for(name))


def _parse_v5(data: Mapping[str, Any], source: str) -> AtlasCatalog:
    version = _str_field(data, "version", "ATLAS release")
    tactics: list[Tactic] = []
    raw_techniques: list[Mapping[str, Any]] = []
    for i, matrix in enumerate(data["matrices"]):
        if not isinstance(matrix, Mapping):
            raise AtlasFormatError(f"matrices[{i}] is not a mapping")
        for obj in matrix.get("tactics") or []:
            if isinstance(obj, Mapping):
                tactics.append(_build_tactic(_checked_id(obj.get("id"), TACTIC_ID_RE, "tactic"), obj))
        raw_techniques.extend(
            obj for obj in matrix.get("techniques") or [] if isinstance(obj, Mapping) and not _retired(obj)
        )
    if not tactics:
        raise AtlasFormatError("legacy ATLAS file has no tactics under matrices[]")
    if not raw_techniques:
        raise AtlasFormatError("legacy ATLAS file has no techniques under matrices[]")
    own_tactics: dict[str, list[str]] = {}
    parents: dict[str, str | None] = {}
    names: dict[str, str] = {}
    for obj in raw_techniques:
        tid = _checked_id(obj.get("id"), TECHNIQUE_ID_RE, "technique")
        if tid in names:
            raise AtlasFormatError(f"duplicate technique id {tid}")
        names[tid] = _str_field(obj, "name", f"technique {tid}")
        own_tactics[tid] = [str(x) for x in obj.get("tactics") or []]
        parent = obj.get("subtechnique-of")
        parents[tid] = str(parent) if parent else None
    return _assemble(version, source or "dist/ATLAS.yaml", tactics, names, own_tactics, parents)


def _retired(obj: Mapping[str, Any]) -> bool:
    return bool(obj.get("deprecated") or obj.get("revoked") or obj.get("retired"))


def _iter_objects(container: Any) -> Iterator[tuple[str | None, Mapping[str, Any]]]:
    """(key, object) pairs from a list of objects or an ID-keyed mapping."""
    if isinstance(container, Mapping):
        for key, obj in container.items():
            if isinstance(obj, Mapping):
                yield str(key), obj
    elif isinstance(container, list):
        for obj in container:
            if isinstance(obj, Mapping):
                yield None, obj


def _object_id(key: str | None, obj: Mapping[str, Any]) -> str | None:
    oid = obj.get("id", key)
    return str(oid).strip() if oid is not None else None


def _kind(key: str | None, obj: Mapping[str, Any]) -> str | None:
    otype = str(obj.get("object-type") or obj.get("object_type") or obj.get("type") or "").lower()
    if otype in {"tactic", "technique"}:
        return otype
    if otype in {"subtechnique", "sub-technique"}:
        return "technique"
    oid = _object_id(key, obj) or ""
    if TACTIC_ID_RE.match(oid):
        return "tactic"
    if TECHNIQUE_ID_RE.match(oid):
        return "technique"
    return None


def _v6_containers(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Top level, then the matrix (or matrices) the objects may live under."""
    out: list[Mapping[str, Any]] = [data]
    matrix = data.get("matrix")
    if isinstance(matrix, Mapping):
        out.append(matrix)
    for m in data.get("matrices") or []:
        if isinstance(m, Mapping):
            out.append(m)
    return out


def _relations(data: Mapping[str, Any]) -> list[tuple[str, str, str, Mapping[str, Any]]]:
    """(type, source, target, relation) from the v6 ``relationships`` (mapping or list form)."""
    out: list[tuple[str, str, str, Mapping[str, Any]]] = []
    rels = data.get("relationships")

    def add(rtype: Any, src: Any, rel: Mapping[str, Any]) -> None:
        tgt = rel.get("target") or rel.get("target_ref") or rel.get("target-id")
        src = rel.get("source") or rel.get("source_ref") or src
        if rtype and src and tgt:
            out.append((str(rtype).lower(), str(src), str(tgt), rel))

    if isinstance(rels, Mapping):
        for src, groups in rels.items():
            if isinstance(groups, Mapping):
                for rtype, items in groups.items():
                    for rel in items if isinstance(items, list) else [items]:
                        if isinstance(rel, Mapping):
                            add(rtype, src, rel)
                        elif isinstance(rel, str):
                            add(rtype, src, {"target": rel})
            elif isinstance(groups, list):
                for rel in groups:
                    if isinstance(rel, Mapping):
                        add(rel.get("relationship-type") or rel.get("type"), src, rel)
    elif isinstance(rels, list):
        for rel in rels:
            if isinstance(rel, Mapping):
                add(
                    rel.get("relationship-type") or rel.get("relationship_type") or rel.get("type"), None, rel
                )
    return out


def _parse_v6(data: Mapping[str, Any], source: str) -> AtlasCatalog:
    collection = data.get("collection") if isinstance(data.get("collection"), Mapping) else {}
    version = collection.get("version") or data.get("version") or data.get("release")
    if version is None or not str(version).strip():
        raise AtlasFormatError("ATLAS v6 data has no release version (`collection.version`)")
    version = str(version).strip()

    tactic_objs: dict[str, Mapping[str, Any]] = {}
    tech_objs: dict[str, Mapping[str, Any]] = {}
    for holder in _v6_containers(data):
        for key in ("tactics", "techniques", "subtechniques", "objects"):
            for okey, obj in _iter_objects(holder.get(key)):
                kind = _kind(okey, obj)
                oid = _object_id(okey, obj)
                if kind is None or oid is None or _retired(obj):
                    continue
                if kind == "tactic":
                    tactic_objs.setdefault(_checked_id(oid, TACTIC_ID_RE, "tactic"), obj)
                else:
                    tech_objs.setdefault(_checked_id(oid, TECHNIQUE_ID_RE, "technique"), obj)
    if not tactic_objs:
        raise AtlasFormatError(
            "ATLAS v6 data has no tactics (looked for `tactics` at top level and under `matrix`)"
        )
    if not tech_objs:
        raise AtlasFormatError(
            "ATLAS v6 data has no techniques (looked for `techniques` at top level and under `matrix`)"
        )

    relations = _relations(data)
    order = _v6_tactic_order(data, relations, tactic_objs)
    tactics = [_build_tactic(tid, tactic_objs[tid]) for tid in order]

    achieves: dict[str, list[str]] = {}
    parent_rel: dict[str, str] = {}
    for rtype, src, tgt, _rel in relations:
        if rtype == "achieves" and src in tech_objs:
            achieves.setdefault(src, []).append(tgt)
        elif rtype in {"specializes", "subtechnique-of", "subtechnique_of"} and src in tech_objs:
            parent_rel[src] = tgt
    names: dict[str, str] = {}
    own: dict[str, list[str]] = {}
    parents: dict[str, str | None] = {}
    for tid, obj in tech_objs.items():
        names[tid] = _str_field(obj, "name", f"technique {tid}")
        listed = [str(x) for x in obj.get("tactics") or []]
        own[tid] = list(dict.fromkeys(listed + achieves.get(tid, [])))
        parent = obj.get("subtechnique-of") or obj.get("subtechnique_of") or parent_rel.get(tid)
        if not parent and tid.count(".") == 2:
            parent = tid.rsplit(".", 1)[0]
        parents[tid] = str(parent) if parent else None
    default_source = f"dist/v6/ATLAS-{version}.yaml"
    return _assemble(version, source or default_source, tactics, names, own, parents)


def _v6_tactic_order(
    data: Mapping[str, Any],
    relations: list[tuple[str, str, str, Mapping[str, Any]]],
    tactic_objs: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """Tactic IDs in matrix order: matrix ``sequences``, else a matrix tactic list, else file order."""
    seq = [
        (rel.get("position", i), tgt)
        for i, (rtype, _s, tgt, rel) in enumerate(relations)
        if rtype == "sequences"
    ]
    if seq:
        try:
            ordered = [tgt for _p, tgt in sorted(seq, key=lambda x: float(x[0]))]
        except (TypeError, ValueError):
            ordered = [tgt for _p, tgt in seq]
    else:
        ordered = []
        matrix = data.get("matrix")
        if isinstance(matrix, Mapping) and isinstance(matrix.get("tactics"), list):
            for item in matrix["tactics"]:
                tid = item.get("id") if isinstance(item, Mapping) else item
                if tid is not None:
                    ordered.append(str(tid))
    unknown = [t for t in ordered if t not in tactic_objs]
    if unknown:
        raise AtlasFormatError(f"matrix tactic order names unknown tactics {unknown}")
    ordered = list(dict.fromkeys(ordered))
    ordered += [t for t in tactic_objs if t not in ordered]
    return ordered


def _assemble(
    version: str,
    source: str,
    tactics: list[Tactic],
    names: dict[str, str],
    own_tactics: dict[str, list[str]],
    parents: dict[str, str | None],
) -> AtlasCatalog:
    """Resolve inheritance and check the technique tree, in the order techniques were given."""
    known_tactics = {t.id for t in tactics}
    techniques: list[Technique] = []
    for tid, name in names.items():
        parent = parents[tid]
        if parent is not None:
            if parent not in names:
                raise AtlasFormatError(f"sub-technique {tid} names unknown parent technique {parent}")
            if not tid.startswith(parent + "."):
                raise AtlasFormatError(f"sub-technique {tid} does not extend its parent's id {parent}")
            if parents.get(parent) is not None:
                raise AtlasFormatError(f"sub-technique {tid} has a sub-technique ({parent}) as parent")
            tac = own_tactics[parent] or own_tactics[tid]
        else:
            if tid.count(".") == 2:
                raise AtlasFormatError(f"{tid} looks like a sub-technique but names no parent")
            tac = own_tactics[tid]
        if not tac:
            raise AtlasFormatError(f"technique {tid} ({name}) belongs to no tactic")
        unknown = [t for t in tac if t not in known_tactics]
        if unknown:
            raise AtlasFormatError(f"technique {tid} names unknown tactics {unknown}")
        techniques.append(Technique(tid, name, tuple(tac), parent))
    return AtlasCatalog(version, source, tactics, techniques)


# ----------------------------------------------------------------- refresh


def _is_url(source: str) -> bool:
    return source.lower().startswith(("https://", "http://"))


def _fetch(client: httpx.Client, url: str) -> bytes:
    """GET a URL with a size cap; transport and HTTP errors become AtlasFormatError."""
    import httpx

    try:
        with client.stream("GET", url) as resp:
            resp.raise_for_status()
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > MAX_SOURCE_BYTES:
                raise AtlasFormatError(f"{url}: {declared} bytes is over the {MAX_SOURCE_BYTES}-byte cap")
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > MAX_SOURCE_BYTES:
                    raise AtlasFormatError(f"{url}: response is over the {MAX_SOURCE_BYTES}-byte cap")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise AtlasFormatError(f"could not download {url}: {exc}") from None
    return b"".join(chunks)


_POINTER_RE = re.compile(rb"^[\w./-]+\.ya?ml\s*$")


def _fetch_release(url: str, client: httpx.Client | None = None) -> tuple[bytes, str]:
    """Fetch a release, following ATLAS's ``ATLAS-latest.yaml`` symlink pointers (served as text).

    The default client verifies TLS, follows redirects and times out after HTTP_TIMEOUT_SECONDS.
    """
    import httpx

    own = client is None
    if client is None:
        client = httpx.Client(timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=True, verify=True)
    try:
        for _hop in range(4):
            body = _fetch(client, url)
            stripped = body.strip()
            if len(stripped) < 256 and _POINTER_RE.match(stripped):
                url = urljoin(url, stripped.decode("ascii"))
                continue
            return body, url
    finally:
        if own:
            client.close()
    raise AtlasFormatError(f"{url}: too many ATLAS-latest pointer hops")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_catalog(catalog: AtlasCatalog) -> str:
    """The catalog JSON text as written to disk (stable, diff-friendly)."""
    return json.dumps(catalog.to_json(), indent=1, ensure_ascii=False) + "\n"


def update_catalog(source: str, dest: Path | None = None, *, source_label: str | None = None) -> AtlasCatalog:
    """Parse an official release from a file path or http(s) URL and write it as the catalog."""
    source = str(source)
    if _is_url(source):
        body, final_url = _fetch_release(source)
        catalog = parse_official(body, source=source_label or final_url)
    else:
        path = Path(source)
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise AtlasFormatError(f"{path}: over the {MAX_SOURCE_BYTES}-byte cap")
        catalog = parse_official(path.read_bytes(), source=source_label or str(path))
    target = Path(dest) if dest is not None else _default_catalog_path()
    _write_atomic(target, dump_catalog(catalog))
    _load_default.cache_clear()
    return catalog


# --------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """``python -m aisoc.atlas.catalog build SOURCE [--dest PATH]`` / ``info [PATH]``."""
    ap = argparse.ArgumentParser(prog="python -m aisoc.atlas.catalog", description=main.__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the catalog from an official ATLAS.yaml (path or URL)")
    b.add_argument("source")
    b.add_argument("--dest", type=Path, default=None, help="default: the shipped atlas/catalog.json")
    b.add_argument("--source-label", default=None, help="what to record as the catalog's source")
    i = sub.add_parser("info", help="summarise a catalog")
    i.add_argument("path", nargs="?", type=Path, default=None)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            cat = update_catalog(args.source, args.dest, source_label=args.source_label)
        else:
            cat = load_catalog(args.path)
    except (AtlasFormatError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(repr(cat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
