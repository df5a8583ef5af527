"""``python -m demo scenario NAME`` / ``python -m demo status``: see demo.scenarios."""

import sys

from demo.scenarios import main

sys.exit(main())
