"""The `edge-ext` command."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from edge_ext.config import ConfigInvalid, load_config


def _load(path: str):
    return _checked(lambda: load_config(path))


def cmd_check_config(args) -> int:
    from edge_ext.config.exposure import exposure_warnings

    config = _load(args.file)
    found = exposure_warnings(config)
    for warning in found:
        print(f"edge-ext: warning: {warning}", file=sys.stderr)
    tail = f", {len(found)} warning{'s' if len(found) != 1 else ''}" if found else ""
    print(f"{args.file}: OK ({len(config.providers)} providers, {config.processor.worker_count()} workers{tail})")
    return 0


def cmd_envoy_config(args) -> int:
    from edge_ext.envoy_config.render import render_yaml

    text = render_yaml(_load(args.file))
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_hash_key(args) -> int:
    import getpass
    import secrets

    from edge_ext.auth import hash_key

    if args.new:
        key = "sk-edge-" + secrets.token_urlsafe(32)
        print(f"key:    {key}   (give this to the client; it is not stored anywhere)")
        print(f"sha256: {hash_key(key)}   (put this in auth.keys[].sha256)")
        return 0
    key = args.key if args.key is not None else (getpass.getpass("client key: ") if sys.stdin.isatty() else sys.stdin.readline())
    key = key.strip()
    if not key:
        print("edge-ext hash-key: empty key", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0


def cmd_render(args) -> int:
    from edge_ext.deploy import DeployError, render_target

    config = _load(args.file)
    try:
        files = render_target(config, args.target, Path(args.file).read_text(), namespace=args.namespace,
                              mock_loopback=args.with_mock, plaintext_processor=args.plaintext_processor,
                              app_namespaces=tuple(args.app_namespace))
    except DeployError as exc:
        print(f"edge-ext: cannot render {args.target}: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output)
    for relative, text in files.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(files)} files for {args.target} into {out}")
    return 0


def _prepare_instance(config) -> None:
    """The instance's private directory and admin token, and the Redis password, before any
    process starts."""
    from edge_ext.config.instance import admin_token
    from edge_ext.errors import ConfigError
    from edge_ext.extproc.server import prepare_directories
    from edge_ext.redis_clients import check_credentials

    try:
        check_credentials(config)
        prepare_directories(config)
        admin_token(config.processor.admin_token_path, create=True)
    except (ConfigError, OSError) as exc:
        print(f"edge-ext: refusing to start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"edge-ext: instance state in {config.processor.directory} "
          f"(admin token: {config.processor.admin_token_path})", flush=True)


def _check_ports(plan, *, with_envoy: bool) -> None:
    from edge_ext import ports

    found = ports.problems(ports.planned(plan.config, with_envoy=with_envoy, mocks=plan.mocks))
    for problem in found:
        print(f"edge-ext: refusing to start: {problem}", file=sys.stderr)
    if found:
        raise SystemExit(2)


def _run_edge(args, *, with_envoy: bool) -> int:
    from edge_ext import edge
    from edge_ext.admin import edge_server
    from edge_ext.logs import setup_logging
    from edge_ext.reload import LiveConfig, Reloader

    setup_logging()
    runtime = edge.runtime_dir()
    metrics_dir = runtime / "metrics"
    metrics_dir.mkdir()
    try:
        source = Path(args.config or edge.DEFAULT_CONFIG)

        def make_plan():
            return edge.make_plan(source, runtime, demo=with_envoy and not args.config, workers=args.workers,
                                  with_mock=getattr(args, "with_mock", False))

        plan = _checked(make_plan)
        if plan.banner:
            print(plan.banner, flush=True)
        _check_ports(plan, with_envoy=with_envoy)
        _prepare_instance(plan.config)
        from edge_ext.config.exposure import exposure_warnings

        for warning in exposure_warnings(plan.config):
            logging.getLogger("edge_ext").warning("%s", warning)
        live = LiveConfig(plan.version)
        try:
            edge.start_metrics_server(plan.config, metrics_dir, live)
        except OSError as exc:  # taken since the check
            m = plan.config.metrics
            print(f"edge-ext: refusing to start: {m.host}:{m.port} (metrics.port) cannot be bound: {exc.strerror}", file=sys.stderr)
            return 2
        sup, envoy_files = edge.build(plan, runtime, with_envoy=with_envoy, metrics_dir=metrics_dir)
        sup.on_reload = Reloader(make_plan, plan, sup, envoy_files, live, edge.worker_argv).reload
        admin = edge_server.serve(plan.config, sup.request_reload)
        c = plan.config

        def announce() -> None:
            what = f"http://{c.listen.host}:{c.listen.port}" if with_envoy else c.processor.socket_address
            metrics = f"http://{c.metrics.host}:{c.metrics.port}/metrics" if c.metrics.enabled else "off"
            print(f"edge-ext: serving on {what} with {c.processor.worker_count()} workers; metrics {metrics}; "
                  f"config version {plan.version}", flush=True)

        try:
            return sup.run(ready_hook=announce)
        finally:
            admin.stop(0)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def _checked(load):
    try:
        return load()
    except ConfigInvalid as exc:
        print(f"edge-ext: invalid config {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_up(args) -> int:
    return _run_edge(args, with_envoy=True)


def cmd_serve(args) -> int:
    if not args.config:
        print("edge-ext serve: --config is required", file=sys.stderr)
        return 2
    return _run_edge(args, with_envoy=False)


def cmd_admin(args) -> int:
    from edge_ext.admin.command import run

    return run(args, _load(args.config))


def cmd_reload(args) -> int:
    """Ask the running edge to re-read its config file. The file is checked here first: a file
    that fails is reported with its lines, and the running edge is not asked."""
    from edge_ext.admin.client import AdminClient, reported
    from edge_ext.admin.pb import admin_pb2 as pb

    config = _load(args.config)

    def reload():
        with AdminClient(config, address=config.processor.edge_admin_address) as admin:
            return admin.Reload(pb.ReloadRequest(), timeout=args.timeout)

    status, reply = reported("reload", reload)
    if status:
        return status
    if not reply.applied:
        print(f"edge-ext reload: refused; config version {reply.version} keeps serving:", file=sys.stderr)
        for problem in reply.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"edge-ext reload: config version {reply.version} serves")
    return 0


def cmd_mock_provider(args) -> int:
    from edge_ext.mock.server import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-ext", description="LLM gateway policy engine for Envoy")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate a config file and print every problem")
    p.add_argument("file")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("envoy-config", help="render the Envoy bootstrap for a config")
    p.add_argument("file")
    p.add_argument("-o", "--output")
    p.set_defaults(func=cmd_envoy_config)

    p = sub.add_parser("hash-key", help="print the sha256 of a client key for auth.keys (reads stdin without KEY)")
    p.add_argument("key", nargs="?")
    p.add_argument("--new", action="store_true", help="generate a new random key and print it with its hash")
    p.set_defaults(func=cmd_hash_key)

    p = sub.add_parser("render", help="write deployment artefacts (envoy, k8s, istio) from a config")
    p.add_argument("--target", choices=("envoy", "k8s", "istio"), required=True)
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True, help="directory to write into")
    p.add_argument("--namespace", default="edge-ext")
    p.add_argument("--with-mock", action="store_true", help="k8s: run the mock provider beside Envoy for loopback base_urls")
    p.add_argument("--plaintext-processor", action="store_true",
                   help="k8s/istio: no mutual TLS between Envoy and the processor (any pod that reaches a worker gets provider keys)")
    p.add_argument("--app-namespace", action="append", default=[], metavar="NS",
                   help="istio: render a processor client certificate for sidecars in NS (repeatable)")
    p.set_defaults(func=cmd_render)

    for name, func, text in (
        ("up", cmd_up, "run Envoy and the processor workers in the foreground"),
        ("serve", cmd_serve, "run only the processor workers (Envoy runs elsewhere)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", help="config file (up: default is the bundled demo config)")
        p.add_argument("--workers", type=int, help="override processor.workers")
        if name == "up":
            p.add_argument("--with-mock", action="store_true", help="start mock providers on loopback base_urls")
        p.set_defaults(func=func)

    p = sub.add_parser("reload", help="make the running edge apply its changed config file (as SIGHUP does)")
    p.add_argument("--config", required=True, help="the config file the edge was started with")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the edge's answer")
    p.set_defaults(func=cmd_reload)

    from edge_ext.admin.command import add_parser as add_admin

    add_admin(sub)
    sub.choices["admin"].set_defaults(func=cmd_admin)

    from edge_ext.mock.settings import add_arguments as add_mock_arguments

    p = sub.add_parser("mock-provider", help="run the bundled mock OpenAI/Anthropic server")
    add_mock_arguments(p)
    p.set_defaults(func=cmd_mock_provider)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
