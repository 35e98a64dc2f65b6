"""Token checks as a server interceptor, method by method from `policy.POLICY` (after gRPC's
token_based_auth example).

A call without `authorization: Bearer <token>` is refused UNAUTHENTICATED on the polling thread,
before its body is parsed. Every other check runs on the call's RPC thread, in one read-only
transaction: the token's principal (`tokens.Authenticator`) and, for a token limited to some
studies, the study of the trial a call names. Then:

- an unknown or revoked token: UNAUTHENTICATED;
- a role that may not do what the method does, or a study the token does not cover: PERMISSION_DENIED;
- ListStudies with a limited token: the reply keeps only the token's studies.

Messages name the method, the token's name and the study, never the token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import grpc
from google.protobuf.message import Message

from pbt_service.auth.policy import POLICY, Rule, Scope
from pbt_service.auth.tokens import Authenticator
from pbt_service.core.access import Principal
from pbt_service.handlers import Behavior, WrappedHandlers, rebuilt
from pbt_service.store.base import Storage, Transaction
from pbt_service.store.errors import UnavailableError

DEADLINE_SHARE = 0.5
"""The share of a call's remaining deadline its token check may use."""
_SCHEME = "bearer "


def bearer(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` entry, if any."""
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            if text[: len(_SCHEME)].lower() == _SCHEME and len(text) > len(_SCHEME):
                return text[len(_SCHEME) :]
    return None


def _refusal(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(refuse)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise RuntimeError("context.abort returned")  # grpc's abort always raises


class AccessInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Applies `policy` to every call; health checks stay open (see `policy.POLICY`)."""

    def __init__(self, storage: Storage, authenticator: Authenticator, policy: dict[str, Rule] | None = None) -> None:
        self._storage = storage
        self._authenticator = authenticator
        self._policy = POLICY if policy is None else policy
        self._missing = _refusal(
            grpc.StatusCode.UNAUTHENTICATED, "authorization: missing bearer token (send `authorization: Bearer TOKEN`)"
        )
        self._unlisted = _refusal(grpc.StatusCode.PERMISSION_DENIED, "this method is not in the access policy")
        self._handlers = WrappedHandlers()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        rule = self._policy.get(method)
        if rule is not None and rule.action is None:
            return continuation(handler_call_details)
        if bearer(handler_call_details.invocation_metadata) is None:
            return self._missing
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        if rule is None:
            return self._unlisted
        return self._handlers.get(
            method, handler, lambda: rebuilt(handler, lambda behavior: self._checked(behavior, method, rule))
        )

    def _checked(self, behavior: Behavior, method: str, rule: Rule) -> Behavior:
        short = method.rsplit("/", 1)[-1]

        def check(request: Any, context: grpc.ServicerContext) -> Any:
            token = bearer(context.invocation_metadata()) or ""
            principal, study = self._decide(token, rule, request, context)
            if principal is None:
                _abort(context, grpc.StatusCode.UNAUTHENTICATED, "authorization: invalid or revoked token")
            assert rule.action is not None
            if not principal.allows(rule.action):
                _abort(context, grpc.StatusCode.PERMISSION_DENIED,
                       f"token {principal.name!r} ({principal.role.value}) may not call {short}: "
                       f"it needs {rule.action.value} access")  # fmt: skip
            if study is not None and not principal.covers(study):
                _abort(context, grpc.StatusCode.PERMISSION_DENIED,
                       f"token {principal.name!r} does not cover study {study!r}")  # fmt: skip
            reply = behavior(request, context)
            if rule.scope is Scope.LISTED and principal.studies is not None and isinstance(reply, Message):
                _keep_covered(reply, principal)
            return reply

        return check

    def _decide(
        self, token: str, rule: Rule, request: Any, context: grpc.ServicerContext
    ) -> tuple[Principal | None, str | None]:
        """The token's principal and the study the call touches (None: none to check), in one
        transaction. UNAVAILABLE when the database does not answer."""
        admin = self._authenticator.bootstrap(token)
        if admin is not None:  # the common case of a single shared token: no database read
            return admin, None
        readable = isinstance(request, Message)

        def decide(tx: Transaction) -> tuple[Principal | None, str | None]:
            principal = self._authenticator.principal(tx, token)
            if principal is None or principal.studies is None or not readable:
                return principal, None
            if rule.scope is Scope.NAME:
                return principal, str(request.name)
            if rule.scope is Scope.STUDY:
                return principal, str(request.study)
            if rule.scope is Scope.TRIAL:
                return principal, tx.study_of_trial(int(request.trial_id))
            return principal, None

        remaining = context.time_remaining()
        try:
            return self._storage.run(decide, timeout_s=None if remaining is None else remaining * DEADLINE_SHARE)
        except UnavailableError:
            _abort(context, grpc.StatusCode.UNAVAILABLE, "database unavailable: could not check the token; retry")


def _keep_covered(reply: Message, principal: Principal) -> None:
    """Drops the studies the principal does not cover from a ListStudies reply."""
    studies = reply.studies  # type: ignore[attr-defined]
    kept = [study for study in studies if principal.covers(study.name)]
    del studies[:]
    studies.extend(kept)
