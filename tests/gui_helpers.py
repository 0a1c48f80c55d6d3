"""Helpers for the GUI handler tests (no browser)."""

from __future__ import annotations

from deepmolm_plugin.gui.app import Page, Tab


def loaded_tab(page: Page, smiles: str) -> Tab:
    """A new tab with `smiles` loaded through the page's own handler."""
    tab = Tab()
    page.load(tab, smiles, None, None)
    assert tab.molecule is not None and tab.molecule.name == smiles
    return tab
