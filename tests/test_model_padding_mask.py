"""Prompts whose images give different position counts (tiles mode) are padded by the
host's splice; without an attention_mask of the caller's, the host handed no mask back, so
forward attended to the padding (left padding: every real position saw it) and
predict_properties pooled it."""

from __future__ import annotations

import torch

from test_hostile_model_sixth import WITH_SLOT, _fp, _image, _model


def _tiles(n, seed):
    return torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def test_a_padded_tiles_batch_without_a_mask_gives_each_row_its_own_logits():
    model = _model(image_mode="tiles")
    model.config.tokenizer_padding_side = "left"
    ids = torch.tensor([WITH_SLOT, WITH_SLOT])
    mols = torch.stack([_fp(3, 1), _fp(3, 2)])
    images = torch.cat([_image(1), _image(2)])
    tiles, grids = [_tiles(4, 1), _tiles(2, 2)], [(2, 2), (1, 2)]
    with torch.no_grad():
        batch = model(input_ids=ids, images=images, molecule_fp=mols, tile_images=tiles, tile_grids=grids).logits
        alone = model(input_ids=ids[1:], images=images[1:], molecule_fp=mols[1:], tile_images=tiles[1:],
                      tile_grids=grids[1:]).logits
    assert batch.shape[1] > alone.shape[1]  # the second row was padded (on the left)
    # was: its last position attended to the left padding: another next-token distribution
    torch.testing.assert_close(batch[1, -1], alone[0, -1], atol=1e-5, rtol=1e-4)


def test_an_unpadded_batch_still_gets_no_mask_back():
    # as the host does for a mask it was not given: SDPA runs maskless
    model = _model(image_mode="base")
    ids = torch.tensor([WITH_SLOT, WITH_SLOT])
    spliced = model.prepare_inputs_labels_for_multimodal(
        ids, None, None, None, None, torch.cat([_image(1), _image(2)]),
        molecule_fp=torch.stack([_fp(3, 1), _fp(3, 2)]))
    assert spliced[2] is None and spliced[4].shape[0] == 2
