"""Helpers for the GUI handler tests (no browser)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from deepmolm_plugin.gui.app import Page, Tab


class RecordingModel:
    """A model for the chat's `stream_reply`: its `generate` records the prompt's ids and
    streams one token; `context` is its config's tokenizer_model_max_length."""

    device, dtype = torch.device("cpu"), torch.float32

    def __init__(self, context):
        self.config = SimpleNamespace(mm_use_im_start_end=False, tokenizer_model_max_length=context)
        self.calls = []

    def generate(self, input_ids, streamer=None, **kwargs):
        self.calls.append(input_ids)
        streamer.put(input_ids)
        streamer.put(torch.tensor([10]))
        streamer.end()


def loaded_tab(page: Page, smiles: str) -> Tab:
    """A new tab with `smiles` loaded through the page's own handler."""
    tab = Tab()
    page.load(tab, smiles, None, None)
    assert tab.molecule is not None and tab.molecule.name == smiles
    return tab
