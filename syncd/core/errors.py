"""syncd's own exceptions. Adapters translate library errors into these (`raise ... from e`).

Messages name what is wrong and where (a key path, a credential, a namespace) and never carry
a secret value.
"""

from __future__ import annotations

from dataclasses import dataclass


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the config, at a key path such as `secrets[0].namespaces.selector`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(SyncdError):
    """The config is invalid; `problems` lists every problem found, not only the first."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


class SourceError(SyncdError):
    """A credential could not be fetched. Subclasses say why; `credential` names it."""

    reason = "error"

    def __init__(self, credential: str, message: str) -> None:
        self.credential = credential
        self.detail = message
        super().__init__(f"credential {credential!r}: {message}")


class CredentialNotFound(SourceError):
    """The source answered, and it holds nothing under that name or path."""

    reason = "not_found"


class SourceUnavailable(SourceError):
    """The source could not be reached or did not answer in time: worth retrying."""

    reason = "unavailable"


class SourceDenied(SourceError):
    """The source refused us (403, bad login): a permission problem, not a transient one."""

    reason = "denied"


class InvalidCredential(SourceError):
    """The source answered with something that is not a usable registry credential."""

    reason = "invalid"


class KubeError(SyncdError):
    """The Kubernetes API refused or failed a request; the message names the object."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)
