import subprocess
import sys
from pathlib import Path

from edge_ext import protogen

ROOT = Path(__file__).resolve().parents[2]


def test_committed_stubs_match_proto_sources(tmp_path):
    """`python -m edge_ext.protogen` must have been run after the last change to proto/."""
    protogen.generate(tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated, "protoc produced nothing"
    stale = [str(rel) for rel in generated if (ROOT / rel).read_bytes() != (tmp_path / rel).read_bytes()]
    assert not stale, f"stale generated stubs (run `python -m edge_ext.protogen`): {stale}"


def test_ext_proc_stubs_and_otlp_exporter_import_together():
    # A fresh interpreter, as the installed edge would start: xds-protos' copy of the
    # opentelemetry protos would break the second import; our own subset must not.
    code = (
        "from edge_ext.extproc.pb import ext_proc_pb2, service_pb2_grpc\n"
        "from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter\n"
        "from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorServer\n"
        "assert ext_proc_pb2.ProcessingRequest.DESCRIPTOR.fields_by_name['attributes'].number == 9\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_service_name_is_envoys():
    from edge_ext.extproc.pb import service_pb2

    assert service_pb2.DESCRIPTOR.services_by_name["ExternalProcessor"].full_name == "envoy.service.ext_proc.v3.ExternalProcessor"


def test_access_log_service_name_is_envoys():
    from edge_ext.extproc.pb import accesslog_pb2, als_service_pb2

    service = als_service_pb2.DESCRIPTOR.services_by_name["AccessLogService"]
    assert service.full_name == "envoy.service.accesslog.v3.AccessLogService"
    common = accesslog_pb2.AccessLogCommon.DESCRIPTOR.fields_by_name
    # Spot checks against Envoy's accesslog.proto: the numbers the outcome channel reads.
    assert (common["metadata"].number, common["upstream_request_attempt_count"].number, common["custom_tags"].number) == (17, 24, 22)
