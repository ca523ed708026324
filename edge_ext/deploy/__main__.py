"""``python -m edge_ext.deploy [ROOT]``: regenerate the committed k8s/ and istio/ examples."""

import sys
from pathlib import Path

from edge_ext.deploy import write_examples

root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
for path in write_examples(root):
    print(path.relative_to(root))
