"""Compile proto/ into the Python stubs under edge_ext/ (``python -m edge_ext.protogen``).

The generated files are committed so that installing edge-ext needs no build step (and no
grpcio-tools: the compiler comes with the test extra); a test regenerates them into a temporary
folder and fails when the committed copies are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError:
        raise SystemExit("edge_ext.protogen needs grpcio-tools, which edge-ext's test extra brings: "
                         "pip install -e '.[test]' (or pip install 'grpcio-tools>=1.85.1,<1.86')") from None

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO_DIR)) for p in proto_files()]
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed for {files}")


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    generate(out)
    print(f"generated stubs for {len(proto_files())} proto files into {out}")


if __name__ == "__main__":
    main()
