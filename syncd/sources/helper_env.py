"""The environment a Docker credential helper runs with: an allow-list, never syncd's own secrets.

A helper is a third-party program. Given syncd's whole environment it would see $VAULT_TOKEN, which
opens every credential syncd may read, so it gets only what helpers are known to need, plus the
names its credential lists under `helper_env`. syncd's own variables are refused even there (see
syncd.config.credentials.reserved_variable), so no rule below can ever let them through.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from syncd.config.credentials import reserved_variable

# Passed by exact name.
_NAMES = frozenset(
    {
        # Finding programs (pass runs gpg), and where a helper keeps its state (~/.aws, ~/.docker,
        # ~/.password-store, ~/.ecr's token cache, gcloud's ~/.config).
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "TMPDIR",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "XDG_DATA_HOME",
        "XDG_RUNTIME_DIR",  # gpg-agent's socket directory
        # Locale and time zone: error messages, and the expiry times some helpers compute.
        "LANG",
        "LANGUAGE",
        "TZ",
        # Egress through a proxy: Go's net/http reads both spellings; Go and OpenSSL read the CA bundle.
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        # docker-credential-gcr: the service account key file and the GCE metadata server.
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_CLOUD_PROJECT",
        "GCE_METADATA_HOST",
        "GCE_METADATA_IP",
        # Helpers that read docker's own config (credsStore chains, registry mirrors).
        "DOCKER_CONFIG",
        # docker-credential-pass: the GnuPG home that decrypts the store.
        "GNUPGHOME",
    }
)

# Passed by prefix: each is a family of settings one kind of helper reads, and new ones appear with
# SDK releases (AWS_ENDPOINT_URL_ECR, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, ...).
_PREFIXES = (
    # docker-credential-ecr-login (AWS SDK for Go): static keys, IRSA (AWS_WEB_IDENTITY_TOKEN_FILE,
    # AWS_ROLE_ARN), EKS Pod Identity (AWS_CONTAINER_*), AWS_REGION, AWS_PROFILE, AWS_CONFIG_FILE,
    # AWS_SHARED_CREDENTIALS_FILE, AWS_ENDPOINT_URL*, AWS_ECR_DISABLE_CACHE / AWS_ECR_CACHE_DIR.
    "AWS_",
    # docker-credential-gcr and gcloud: CLOUDSDK_CONFIG, CLOUDSDK_CORE_PROJECT, ...
    "CLOUDSDK_",
    # ACR helpers (azure-identity): AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE
    # (workload identity), AZURE_AUTHORITY_HOST, AZURE_CLIENT_SECRET, ...
    "AZURE_",
    # pass: PASSWORD_STORE_DIR, PASSWORD_STORE_GPG_OPTS, PASSWORD_STORE_KEY, ...
    "PASSWORD_STORE_",
    # Locale categories (LC_ALL, LC_CTYPE, ...).
    "LC_",
)


def passed_by_default(name: str) -> bool:
    """Whether a helper gets `name` without its credential naming it."""
    return (name in _NAMES or name.startswith(_PREFIXES)) and not reserved_variable(name)


def helper_environment(named: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of `environ` (default: syncd's) a helper runs with: the allow-list, plus `named`.

    The config refuses reserved names in `named`; they are checked again here, so that a credential
    built in code (a docker config.json's helper, a test) cannot pass one either.
    """
    environ = os.environ if environ is None else environ
    extra = {name for name in named if not reserved_variable(name)}
    return {name: value for name, value in environ.items() if name in extra or passed_by_default(name)}
