"""Deployment artefacts rendered from one edge-ext config: Envoy, Kubernetes (kustomize), Istio.

``render_target(config, target, config_text)`` maps paths relative to the target's directory to
file contents. ``write_examples(root)`` (or ``python -m edge_ext.deploy``) regenerates the
committed examples under k8s/ and istio/; a unit test fails while they are stale.
"""

from __future__ import annotations

from pathlib import Path

from edge_ext.config.models import Config
from edge_ext.deploy.common import ISTIO_VERSIONS, K8S_VERSION, NAMESPACE, DeployError, deployment

TARGETS = ("envoy", "k8s", "istio")
K8S_EXAMPLE_CONFIG = "envoy/example-config.yaml"
# The envoy example's provider is the loopback mock, which a mesh cannot route to; the Istio
# example has real provider hosts.
ISTIO_EXAMPLE_CONFIG = "istio/example-config.yaml"
HANDWRITTEN = {"README.md", "example-config.yaml"}

__all__ = ["DeployError", "ISTIO_VERSIONS", "K8S_VERSION", "TARGETS", "render_target", "write_examples", "examples"]


def render_target(config: Config, target: str, config_text: str, *, namespace: str = NAMESPACE,
                  mock_loopback: bool = False, plaintext_processor: bool = False,
                  app_namespaces: tuple[str, ...] = ()) -> dict[str, str]:
    """Files of ``target`` ("envoy", "k8s" or "istio"), keyed by path relative to its directory.

    ``config_text`` is the config file as written: it becomes the processor's ConfigMap when it
    is already fit for a pod (TCP workers on 0.0.0.0 behind mutual TLS, ...), else the adapted
    config does, with a header listing the changes. ``mock_loopback`` runs the bundled mock
    provider in the Envoy pod for loopback base_urls (k8s only; the demo setup of `edge-ext up
    --with-mock`). ``plaintext_processor`` drops the mutual TLS between Envoy and the processor
    (and the certificates), loudly. ``app_namespaces`` (Istio sidecar mode) get a client
    certificate each.
    """
    if target == "envoy":
        from edge_ext.envoy_config.render import render_yaml

        return {"envoy.yaml": render_yaml(config)}
    if target not in TARGETS:
        raise DeployError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    dep = deployment(config, config_text, namespace, istio=target == "istio", plaintext=plaintext_processor,
                     app_namespaces=tuple(app_namespaces))
    if target == "k8s":
        from edge_ext.deploy.edge import overlays
        from edge_ext.deploy.k8s import base

        files = {f"base/{path}": text for path, text in base(dep).items()}
        files.update(overlays(dep, mock=mock_loopback))
        return files
    from edge_ext.deploy.istio import render_istio

    return render_istio(dep)


def examples(root: Path) -> dict[Path, str]:
    """The committed example files under ``root`` (the repository), freshly rendered."""
    from edge_ext.config import load_config

    out: dict[Path, str] = {}
    for target, source, mock in (("k8s", K8S_EXAMPLE_CONFIG, True), ("istio", ISTIO_EXAMPLE_CONFIG, False)):
        path = root / source
        files = render_target(load_config(path), target, path.read_text(encoding="utf-8"), mock_loopback=mock)
        out.update({root / target / rel: text for rel, text in files.items()})
    return out


def write_examples(root: Path) -> list[Path]:
    """Rewrite k8s/ and istio/ under ``root`` from the example configs; drop stale rendered files."""
    root = Path(root)
    fresh = examples(root)
    for target in ("k8s", "istio"):
        for old in (root / target).rglob("*.yaml"):
            if old not in fresh and old.name not in HANDWRITTEN:
                old.unlink()
    for path, text in fresh.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return sorted(fresh)
