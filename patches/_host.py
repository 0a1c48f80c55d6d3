"""What every patch needs: the host's version, a guard, and one-time application.

Patches are version-guarded: each names the llava-torch versions it was written
against and refuses to run, with a clear error, on a host whose code it was not checked
on. They are idempotent: `apply_once` records applied patches on the patched module
itself, so a second `register()` (or a second import path) changes nothing.
"""

from __future__ import annotations

import importlib.metadata
from types import ModuleType
from typing import Callable

SUPPORTED_HOST = ("1.2.2", "1.2.2.post1")
_APPLIED_ATTR = "_deepmolm_patches"


def host_version() -> str:
    try:
        return importlib.metadata.version("llava-torch")
    except importlib.metadata.PackageNotFoundError as e:
        raise RuntimeError(
            "the host framework llava-torch is not installed: "
            "pip install --no-deps llava-torch==1.2.2.post1"
        ) from e


def require_host(patch: str) -> None:
    version = host_version()
    if version not in SUPPORTED_HOST:
        raise RuntimeError(
            f"patch {patch!r} was written against llava-torch {SUPPORTED_HOST}, found {version}; "
            "check the patch against this host before using it"
        )


def apply_once(module: ModuleType, name: str, apply: Callable[[], None]) -> bool:
    """Run `apply` unless patch `name` is already recorded on `module`. True if it ran."""
    applied = module.__dict__.setdefault(_APPLIED_ATTR, set())
    if name in applied:
        return False
    apply()
    applied.add(name)
    return True


def original(module: ModuleType, attr: str):
    """The host's own `module.attr`, as it was before any of our patches."""
    return module.__dict__.get(f"_deepmolm_original_{attr}", getattr(module, attr))


def replace(module: ModuleType, attr: str, new) -> None:
    """Rebind `module.attr`, keeping the host's original for `original()`."""
    module.__dict__.setdefault(f"_deepmolm_original_{attr}", getattr(module, attr))
    setattr(module, attr, new)
