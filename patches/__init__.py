"""Runtime patches to the llava-torch host, one module per concern.

Each patch is small, named for what it fixes, version-guarded and idempotent.
They are applied by ``deepmolm_plugin.register()`` (host-integration issue).
"""
