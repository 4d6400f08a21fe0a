"""`reattest_model_artifacts`: verify a model directory against its OpenSSF model signature.

Uses `model_signing` (the OpenSSF model-signing library, 1.x) with a key-based (elliptic curve)
signature: the signature is a Sigstore bundle whose in-toto statement lists the sha256 of every
model file; verification checks the bundle with the public key, re-hashes the directory and
compares. Any mismatch (changed, added or missing file, wrong key) fails the step, which blocks
whatever the playbook does next (and rolls back what it already did) — a model that does not
verify is not promoted or rolled back to.

Verification changes nothing, so there is nothing to undo.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import Field

from aisoc.respond.actions.base import Action, ActionError, Change, Params, Result


class ReattestParams(Params):
    model_path: str = Field(min_length=1, description="model directory (or file) that was signed")
    signature_path: str = Field(min_length=1, description="the signature bundle (model_signing output)")
    public_key: str = Field(min_length=1, description="PEM public key of the signing key")
    ignore_unsigned_files: bool = Field(False, description="do not fail on files the signature does not list")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ReattestModelArtifacts(Action):
    """Require the model's artifacts to verify against their signature; fail the run if they do not."""

    name = "reattest_model_artifacts"
    Params = ReattestParams
    undoable = False
    mutating = False
    description = "Verify model artifacts against their OpenSSF model signature"

    def _paths(self, p: ReattestParams) -> tuple[Path, Path, Path]:
        try:
            model = self.context.readable(Path(p.model_path))
            signature = self.context.readable(Path(p.signature_path))
            key = self.context.readable(Path(p.public_key))
        except PermissionError as exc:
            raise ActionError(f"reattest_model_artifacts: {exc}") from None
        for what, path in (("model", model), ("signature", signature), ("public key", key)):
            if not path.exists():
                raise ActionError(f"reattest_model_artifacts: {what} {path} does not exist")
        return model, signature, key

    def plan(self, params: dict[str, Any] | Params) -> Change:
        p: ReattestParams = self.parse(params)
        model, signature, _ = self._paths(p)
        return Change(self.name, str(model), {"attested": "unverified"}, {"attested": "must verify"},
                      f"verify {model} against {signature.name}; fail (and roll back) on any mismatch")

    def apply(self, params: dict[str, Any] | Params) -> Result:
        p: ReattestParams = self.parse(params)
        model, signature, key = self._paths(p)
        try:
            from model_signing import verifying
        except ImportError:
            raise ActionError("reattest_model_artifacts needs model_signing (pip install 'aisoc[supply-chain]')") \
                from None
        config = verifying.Config().use_elliptic_key_verifier(public_key=key)
        if p.ignore_unsigned_files:
            config.set_ignore_unsigned_files(True)
        try:
            config.verify(model, signature)
        except Exception as exc:  # noqa: BLE001 - model_signing raises ValueError and others on mismatch
            message = str(exc)
            raise ActionError(f"{model} does NOT verify against {signature.name}: "
                              f"{message[:800]}{'...' if len(message) > 800 else ''}") from None
        files = [f for f in model.rglob("*") if f.is_file()] if model.is_dir() else [model]
        details = {"files": len(files), "signature_sha256": _sha256(signature), "public_key_sha256": _sha256(key)}
        return Result(self.name, str(model), {"attested": "unverified"}, {"attested": "verified"}, False, {},
                      details)
