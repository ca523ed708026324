"""edge-ext's admin gRPC service (proto/edge_ext/admin/pb/admin.proto).

Served on its own socket (edge_ext.extproc.server), never beside ext_proc: SetBreaker changes
routing for every client and GetSpend shows per-tenant spend. Every call must carry the
instance's admin token as ``authorization: Bearer <token>`` metadata.
"""

from __future__ import annotations

import hmac
import os

import grpc

from edge_ext import __version__
from edge_ext.admin.pb import admin_pb2 as pb
from edge_ext.admin.pb import admin_pb2_grpc
from edge_ext.config.models import Config
from edge_ext.metrics import WorkerMetrics


_NO_TOKEN = "the admin API needs the instance's admin token"


def _authorized(details: grpc.HandlerCallDetails, expected: bytes) -> bool:
    sent = dict(details.invocation_metadata or ()).get("authorization", "")
    return hmac.compare_digest(sent.encode() if isinstance(sent, str) else sent, expected)


class TokenCheck(grpc.aio.ServerInterceptor):
    """Refuses every admin call without the bearer token, before any handler runs."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

        async def refuse(request, context: grpc.aio.ServicerContext):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, _NO_TOKEN)

        self._refuse = grpc.unary_unary_rpc_method_handler(refuse)

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        return await continuation(details) if _authorized(details, self._expected) else self._refuse


class SyncTokenCheck(grpc.ServerInterceptor):
    """The same check for the supervisor's (thread-pool) admin server."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()
        self._refuse = grpc.unary_unary_rpc_method_handler(
            lambda request, context: context.abort(grpc.StatusCode.UNAUTHENTICATED, _NO_TOKEN))

    def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        return continuation(details) if _authorized(details, self._expected) else self._refuse


class AdminService(admin_pb2_grpc.AdminServicer):
    def __init__(self, config: Config, worker_index: int, metrics: WorkerMetrics, router=None, budgets=None,
                 semantic=None):
        self._config = config
        self._semantic = semantic
        self._router = router
        self._budgets = budgets
        self._index = worker_index
        self._metrics = metrics

    async def GetStatus(self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext) -> pb.GetStatusResponse:
        states = {name: s.value for name, s in self._router.states().items()} if self._router else {}
        return pb.GetStatusResponse(
            version=__version__,
            worker_index=self._index,
            worker_pid=os.getpid(),
            streams_total=int(self._metrics.streams.value),
            providers=[
                pb.ProviderStatus(
                    name=p.name,
                    kind=p.kind,
                    cluster=p.cluster,
                    circuit_state=states.get(p.name, "closed"),
                    models=list(p.public_models()),
                    **self._limits_of(p.name),
                )
                for p in self._config.providers
            ],
        )

    def _limits_of(self, provider: str) -> dict:
        if self._router is None:
            return {"rate_limit": "unknown"}
        verdict = self._router.verdict(provider)
        fields: dict = {"rate_limit": verdict.standing.value, "rate_limit_until": verdict.until}
        reported = self._router.reported_limits(provider)
        for name in ("requests", "tokens"):
            budget = getattr(reported, name) if reported is not None else None
            if budget is not None:
                fields[name] = pb.RateLimitBudget(remaining=budget.remaining, limit=budget.limit or 0.0,
                                                  reset_at=budget.reset_at)
        return fields

    async def GetSpend(self, request: pb.GetSpendRequest, context: grpc.aio.ServicerContext) -> pb.GetSpendResponse:
        if self._budgets is None:
            return pb.GetSpendResponse()
        rows = await self._budgets.status(request.scope, request.id)
        return pb.GetSpendResponse(budgets=[
            pb.BudgetStatus(scope=spec.scope, id=spec.id, period=spec.period, period_key=key,
                            limit_usd=str(spec.limit_usd), spent_usd=str(spent), remaining_usd=str(verdict.remaining),
                            allowed=verdict.allowed, message=verdict.message)
            for spec, key, spent, verdict in rows
        ])

    async def SetBreaker(self, request: pb.SetBreakerRequest, context: grpc.aio.ServicerContext) -> pb.SetBreakerResponse:
        from edge_ext.routing.breaker import BreakerState

        names = {p.name for p in self._config.providers}
        try:
            state = BreakerState(request.state)
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"state must be one of {[s.value for s in BreakerState]}")
        if request.provider not in names or self._router is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no provider named {request.provider!r}")
        self._router.force(request.provider, state)
        return pb.SetBreakerResponse(provider=request.provider, state=self._router.states()[request.provider].value)

    async def Reload(self, request: pb.ReloadRequest, context: grpc.aio.ServicerContext) -> pb.ReloadResponse:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                            f"a worker cannot reload the edge: ask {self._config.processor.edge_admin_address} "
                            "(`edge-ext reload --config FILE`)")

    async def PurgeSemantic(self, request: pb.PurgeSemanticRequest,
                            context: grpc.aio.ServicerContext) -> pb.PurgeSemanticResponse:
        if self._semantic is None:
            return pb.PurgeSemanticResponse(worker_index=self._index, enabled=False)
        # Entries are filed under the tenant's cache namespace (edge_ext.cache.key.namespace_for).
        namespace = f"t-{request.tenant}" if request.tenant else None
        local, shared, error = await self._semantic.purge(namespace, request.model or None)
        return pb.PurgeSemanticResponse(worker_index=self._index, local_removed=local, shared_removed=shared, enabled=True,
                                        shared_error=error)
