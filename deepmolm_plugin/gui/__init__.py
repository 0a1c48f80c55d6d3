"""DeepMoLM Chat: a web page that shows what the model sees, and where it looks.

    python -m deepmolm_plugin.gui --model-path CKPT [--host 127.0.0.1 --port 7860]
    deepmolm-gui --model-path CKPT

Modules, one concept each:
- ``session``: the model (the host's loader) and one molecule -> everything shown;
- ``views``: the model's image inputs (global view, tiles) and their pixels;
- ``attention``: the fusion projector's cross-attention -> heatmaps and per-atom shares;
- ``viewer3d``: the conformer behind ``molecule_fp`` as a plotly ball-and-stick figure;
- ``chat``: prompts from the host's template, streamed replies;
- ``app``: the gradio page; ``__main__``: the command line.
"""
