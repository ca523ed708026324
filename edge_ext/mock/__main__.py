"""``python -m edge_ext.mock``: run the mock provider until SIGTERM/SIGINT."""

import sys

from .server import main

sys.exit(main())
