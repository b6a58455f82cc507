"""Who a bearer token belongs to, and whether they may read a URL: TokenReview + SubjectAccessReview.

The same two calls kube-rbac-proxy makes for a scrape. The token goes to the apiserver in the
TokenReview's body and nowhere else: not into a log line, not into an error message.
Needs `create` on tokenreviews and subjectaccessreviews (the ClusterRole system:auth-delegator).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

from kubernetes import client

from syncd.core.errors import KubeError
from syncd.kube.client import call

T = TypeVar("T")
REVIEW_TIMEOUT = 5.0  # seconds per call: a hung apiserver must not hold a worker of the HTTP server
Access = Literal["allowed", "forbidden", "unauthenticated"]


class ReviewUnavailable(KubeError):
    """A review could not be made (API unreachable, forbidden to syncd, no answer): try again later."""


class AccessReviews:
    def __init__(self, api: client.ApiClient, *, audiences: list[str] | None = None) -> None:
        self.authentication = client.AuthenticationV1Api(api)
        self.authorization = client.AuthorizationV1Api(api)
        self.audiences = audiences

    def access(self, token: str, *, path: str, verb: str) -> Access:
        """`allowed`, `forbidden` (a known user without the right), `unauthenticated` (a token not accepted)."""
        user = self._authenticate(token)
        if user is None:
            return "unauthenticated"
        return "allowed" if self._authorize(user, path=path, verb=verb) else "forbidden"

    def _authenticate(self, token: str) -> client.V1UserInfo | None:
        review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=self.audiences))
        answer = _reviewed(
            lambda: self.authentication.create_token_review(review, _request_timeout=REVIEW_TIMEOUT), what="TokenReview"
        )
        status = answer.status
        if status is None or not status.authenticated or status.user is None:
            return None
        return status.user

    def _authorize(self, user: client.V1UserInfo, *, path: str, verb: str) -> bool:
        spec = client.V1SubjectAccessReviewSpec(
            user=user.username,
            uid=user.uid,
            groups=user.groups,
            extra=user.extra,
            non_resource_attributes=client.V1NonResourceAttributes(path=path, verb=verb),
        )
        review = client.V1SubjectAccessReview(spec=spec)
        answer = _reviewed(
            lambda: self.authorization.create_subject_access_review(review, _request_timeout=REVIEW_TIMEOUT),
            what="SubjectAccessReview",
        )
        return bool(answer.status is not None and answer.status.allowed)


def _reviewed(fn: Callable[[], T], *, what: str) -> T:
    try:
        return call(fn, what=f"create {what}")
    except KubeError as exc:
        raise ReviewUnavailable(str(exc), status=exc.status) from None
