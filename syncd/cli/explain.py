"""`syncd explain`: which login the kubelet would offer for an image in a namespace, and why.

Reads what the kubelet reads (the ServiceAccount's imagePullSecrets, then those Secrets) and runs
the kubelet's own lookup rules (syncd.registry.kubelet) over them. Says which Secret, which registry key
and which syncd credential (by name) come first, then the others in order; never a value.

With `verify`, each offered login is also tried at its registry's `/v2/` (syncd.registry.login,
the check of `credentials[].verify`): the runtime tries the kubelet's logins in order and the pull
fails only when every one is refused, so a stale or wrong Secret is told from one that logs in.
That answers for the login, not for the repository's permissions or the tag's existence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from syncd.config import Config
from syncd.core.errors import SourceError
from syncd.core.values import RegistryCredential
from syncd.registry.kubelet import InvalidImage, Login, MalformedSecret, PullSecret, make_keyring, repository
from syncd.registry.login import VerificationFailed, verify_login

ACCEPTED, REFUSED, UNAVAILABLE = "accepted", "refused", "unavailable"
CheckLogin = Callable[[Login], str]  # ACCEPTED / REFUSED / UNAVAILABLE


class PullSecretReader(Protocol):
    def pull_secret_names(self, namespace: str, service_account: str) -> list[str] | None: ...
    def pull_secret(self, namespace: str, name: str, instance: str) -> tuple[PullSecret, str | None] | None: ...


@dataclass(frozen=True)
class Offer:
    """One login the kubelet would try, in order: where it comes from, never what it is."""

    secret: str
    key: str
    credential: str | None  # syncd's credential name, when the Secret is syncd's spec of this config
    login: str | None = None  # with verify: what the registry said to it (ACCEPTED / REFUSED / UNAVAILABLE)


@dataclass
class Explanation:
    namespace: str
    image: str
    service_account: str
    pull_secrets: list[str] = field(default_factory=list)
    offers: list[Offer] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.offers) and not self.problems


def explain(
    reader: PullSecretReader,
    config: Config,
    *,
    namespace: str,
    image: str,
    service_account: str,
    check: CheckLogin | None = None,
) -> Explanation:
    result = Explanation(namespace, image, service_account)
    names = reader.pull_secret_names(namespace, service_account)
    if names is None:
        result.problems.append(f"ServiceAccount {namespace}/{service_account} does not exist")
        return result
    result.pull_secrets = names
    secrets = _read_all(reader, namespace, names, result, config.instance)
    try:
        logins = make_keyring([secret for secret, _ in secrets]).lookup(repository(image))
    except MalformedSecret as exc:
        result.problems.append(f"{exc}: the kubelet then offers no login at all, for every image of the Pod")
        return result
    except InvalidImage as exc:
        result.problems.append(f"{exc}: the kubelet fails the pull before looking for a login")
        return result
    credentials_of = {secret.name: spec for secret, spec in secrets}
    result.offers = [_offer(login, credentials_of.get(login.secret), config) for login in logins]
    if not result.offers:
        result.problems.append(f"no listed Secret has a key the kubelet matches to {image!r}: the pull is anonymous")
    elif check is not None:
        _check_logins(result, logins, check)
    return result


def check_login(login: Login) -> str:
    """What the registry says to `login` (its key names the registry); never raises."""
    try:
        verify_login(login.secret, RegistryCredential(login.key, login.username, login.password))
    except VerificationFailed:
        return REFUSED
    except SourceError:  # unreachable, an error status, or a key that is no registry address
        return UNAVAILABLE
    return ACCEPTED


def _check_logins(result: Explanation, logins: list[Login], check: CheckLogin) -> None:
    """The runtime tries the logins in order and stops at the first the registry accepts."""
    answers: list[str] = []
    for login in logins:
        answers.append(check(login))
        if answers[-1] == ACCEPTED:
            break
    for i, answer in enumerate(answers):  # the ones after an accepted login are never tried
        result.offers[i] = replace(result.offers[i], login=answer)
    if answers[-1] == ACCEPTED:
        return
    if UNAVAILABLE in answers:
        result.problems.append("the registry did not answer for every offered login: the pull cannot be judged")
    else:
        result.problems.append("the registry refused every offered login: the kubelet's pull fails (ErrImagePull)")


def _read_all(
    reader: PullSecretReader, namespace: str, names: list[str], result: Explanation, instance: str
) -> list[tuple[PullSecret, str | None]]:
    found = []
    for name in names:
        secret = reader.pull_secret(namespace, name, instance)
        if secret is None:
            result.problems.append(
                f"Secret {namespace}/{name} is listed but missing: the kubelet skips it "
                "(Event FailedToRetrieveImagePullSecret on every pod start)"
            )
            continue
        found.append(secret)
    return found


def _offer(login: Login, spec_name: str | None, config: Config) -> Offer:
    spec = next((s for s in config.secrets if s.name == spec_name), None)
    credential = None
    if spec is not None:
        credential = next((c for c in spec.credentials if login.key in config.auth_keys(c)), None)
    return Offer(login.secret, login.key, credential)
