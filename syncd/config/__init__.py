"""The config file (SPEC §3): typed, validated, every problem reported with its key path.

models (the sections), credentials (one model per source), fields (shared types), loader (YAML
-> models), messages (pydantic's findings in the user's words), checks (across sections),
json_schema (config/schema.json).
"""

from syncd.config.credentials import (
    CREDENTIAL_MODELS,
    Credential,
    DockerConfigCredential,
    HelperCredential,
    VaultCredential,
    VaultSecret,
    parse_credential,
)
from syncd.config.json_schema import json_schema
from syncd.config.loader import load_config, parse_config
from syncd.config.models import (
    Admission,
    AdmissionTls,
    Config,
    LeaderElection,
    Namespaces,
    Retry,
    Schedule,
    SecretSpec,
    Server,
    VaultAuth,
    VaultConfig,
)

__all__ = [
    "CREDENTIAL_MODELS",
    "Admission",
    "AdmissionTls",
    "Config",
    "Credential",
    "DockerConfigCredential",
    "HelperCredential",
    "LeaderElection",
    "Namespaces",
    "Retry",
    "Schedule",
    "SecretSpec",
    "Server",
    "VaultAuth",
    "VaultConfig",
    "VaultCredential",
    "VaultSecret",
    "json_schema",
    "load_config",
    "parse_config",
    "parse_credential",
]
