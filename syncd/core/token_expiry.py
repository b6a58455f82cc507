"""When a registry password says when it stops working: the `exp` of a JWT.

Many registry and OIDC tokens are JSON Web Tokens (RFC 7519): Azure Container Registry's refresh
and access tokens, GitLab's CI_JOB_JWT and deploy-token exchanges, Harbor's and distribution's
bearer tokens, Kubernetes ServiceAccount tokens used as registry passwords. Their `exp` claim
(RFC 7519 §4.1.4, seconds since the epoch) is when they expire. Only the claim is read: the
signature is not checked (syncd is not the audience) and nothing of the token is logged.
Opaque tokens (Docker Hub and GitHub personal access tokens, Quay robot tokens, GCP `ya29.`
access tokens) carry no expiry: None.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_MAX_TOKEN = 64 * 1024


def jwt_expiry(password: str) -> dt.datetime | None:
    """The `exp` of a password that is a JWT (three base64url segments, a JSON header with `alg`)."""
    parts = password.split(".")
    if len(password) > _MAX_TOKEN or len(parts) != 3 or not all(_SEGMENT.fullmatch(p) for p in parts[:2]):
        return None
    header, claims = _json_segment(parts[0]), _json_segment(parts[1])
    if not isinstance(header, dict) or "alg" not in header or not isinstance(claims, dict):
        return None
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not 0 < exp < 1e11:
        return None
    return dt.datetime.fromtimestamp(exp, dt.UTC)


def _json_segment(segment: str) -> object:
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        return None


def earliest(*moments: dt.datetime | None) -> dt.datetime | None:
    """The first of the known expiries (a source's lease, a configured lifetime, the token's own)."""
    known = [m for m in moments if m is not None]
    return min(known) if known else None
