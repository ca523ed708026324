"""`edge-ext admin`: the admin API from a shell, with the instance's socket and token.

Runs on the machine (or in the pod) of the instance: the admin sockets and the token live in
its private state directory, so only its service user (or root) can use this command.
"""

from __future__ import annotations

import argparse
import json

from google.protobuf.json_format import MessageToDict

from edge_ext.admin.client import AdminClient, reported
from edge_ext.admin.pb import admin_pb2 as pb


def add_parser(sub) -> None:
    p = sub.add_parser("admin", help="ask a running instance: status, spend, force a breaker")
    p.add_argument("--config", required=True, help="the instance's config file (names its state directory)")
    p.add_argument("--worker", type=int, default=0, help="which worker to ask (state is shared; status is per worker)")
    calls = p.add_subparsers(dest="call", required=True)
    calls.add_parser("status", help="version, worker, providers and their breakers")
    spend = calls.add_parser("spend", help="budgets: spent, remaining, allowed")
    spend.add_argument("--scope", choices=("key", "tenant"), default="")
    spend.add_argument("--id", default="")
    breaker = calls.add_parser("breaker", help="force a provider's breaker open or closed")
    breaker.add_argument("provider")
    breaker.add_argument("state", choices=("open", "closed", "half_open"))
    purge = calls.add_parser("purge-semantic", help="remove semantic cache entries of a tenant and model (every worker)")
    purge.add_argument("--tenant", default="", help="the tenant (auth.keys[].tenant); empty: every tenant")
    purge.add_argument("--model", default="", help="the public model name; empty: every model")


def run(args: argparse.Namespace, config) -> int:
    if args.call == "purge-semantic":
        return _purge_semantic(args, config)
    if args.call == "status":
        method, request = "GetStatus", pb.GetStatusRequest()
    elif args.call == "spend":
        method, request = "GetSpend", pb.GetSpendRequest(scope=args.scope, id=args.id)
    else:
        method, request = "SetBreaker", pb.SetBreakerRequest(provider=args.provider, state=args.state)
    def call():
        with AdminClient(config, args.worker) as admin:
            return getattr(admin, method)(request)

    status, reply = reported("admin", call)
    if not status:
        print(json.dumps(MessageToDict(reply, preserving_proto_field_name=True), indent=2))
    return status


def _purge_semantic(args: argparse.Namespace, config) -> int:
    """Every worker holds its own index: each is asked (the shared tier is emptied by the first one)."""
    request = pb.PurgeSemanticRequest(tenant=args.tenant, model=args.model)

    def purge_each():
        replies = []
        for index in range(config.processor.worker_count()):
            with AdminClient(config, index) as admin:
                replies.append(MessageToDict(admin.PurgeSemantic(request), preserving_proto_field_name=True))
        return replies

    status, replies = reported("admin", purge_each)
    if not status:
        print(json.dumps(replies, indent=2))
    return status
