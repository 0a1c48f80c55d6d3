"""`python -m deepmolm_plugin.data.prepare`: the deepmolm-prepare command. The package is
imported under its real name first, so the workers unpickle `items._work` by that name."""

import sys

from deepmolm_plugin.data.prepare import main

sys.exit(main())
