"""`python -m deepmolm_plugin.data.prepare`: the deepmolm-prepare command. The package is
imported under its real name first, so the workers unpickle `items._work` by that name."""

import sys

from deepmolm_plugin.entry_points import prepare

sys.exit(prepare())  # a Ctrl-C while it imports is one line too
