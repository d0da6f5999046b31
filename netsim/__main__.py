"""``python -m netsim``: the same as the ``netsim`` command."""

import sys

from netsim.cli import main

sys.exit(main())
