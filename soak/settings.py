"""What one soak run is: its knobs, and the secret specs it asks syncd to keep.

The specs are described here once, in the soak's own terms (which labels select a namespace),
and turned both into syncd's config (a label selector string) and into the observer's own
predicate: the observer never asks syncd which namespaces it selects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TIERS = ("a", "b", "c")
SOAK_LABEL = "soak.example/member"
TIER_LABEL = "soak.example/tier"


@dataclass(frozen=True)
class CredentialPlan:
    """One registry credential: its source and the registry it logs in to."""

    name: str
    registry: str
    source: str  # "vault" | "helper"
    vault_path: str = ""
    lifetime: str | None = None


@dataclass(frozen=True)
class SpecPlan:
    """One secret spec: its credential, and the tiers of soak namespaces it selects."""

    name: str
    credential: str
    tiers: frozenset[str]
    service_accounts: tuple[str, ...] = ()

    def selector(self) -> str:
        return f"{SOAK_LABEL}=yes,{TIER_LABEL} in ({','.join(sorted(self.tiers))})"

    def selects(self, labels: Mapping[str, str]) -> bool:
        """The observer's own reading of `selector()`."""
        return labels.get(SOAK_LABEL) == "yes" and labels.get(TIER_LABEL) in self.tiers


CREDENTIALS = (
    CredentialPlan("kv-robot", "ghcr.io", "vault", vault_path="soak/kv-robot"),
    # A short lifetime: syncd fetches it again every ~2/3 of it, whatever the interval.
    CredentialPlan("leased-robot", "quay.io", "vault", vault_path="soak/leased-robot", lifetime="20s"),
    CredentialPlan("pass-robot", "registry.soak.example", "helper"),
)

# The config reload flips regcred-kv between these two selections.
KV_TIERS = (frozenset({"a", "b"}), frozenset({"a", "b", "c"}))


def specs(kv_variant: int) -> tuple[SpecPlan, ...]:
    return (
        SpecPlan("regcred-kv", "kv-robot", KV_TIERS[kv_variant % 2]),
        SpecPlan("regcred-lease", "leased-robot", frozenset(TIERS)),
        SpecPlan("regcred-helper", "pass-robot", frozenset({"a", "c"}), service_accounts=("default", "builder")),
    )


@dataclass(frozen=True)
class Settings:
    duration: float  # seconds of churn and faults, after setup
    seed: int
    out: Path
    namespaces: int = 300
    lease_seconds: int = 6
    interval: str = "10s"
    # The time every selected namespace must hold the current credential after a fault clears,
    # a rotation, or a churn event (see README: lease + watch backoff + interval + retry + rollout).
    slo_seconds: float = 45.0
    grace_seconds: float = 5.0  # a namespace or Secret churned this recently is not yet required
    fault_gap: tuple[float, float] = (8.0, 20.0)  # quiet seconds between one fault's convergence and the next
    fault_seconds: tuple[float, float] = (12.0, 25.0)  # length of an outage, hang or burst
    rotation_every: tuple[float, float] = (30.0, 90.0)
    churn_every: float = 1.0  # mean seconds between two churn changes
    use_proxy: bool = True
    sabotage: bool = False  # bad writes halfway through, to show the checks fail (soak.sabotage)
