"""Fit the KFLM2 auxiliary head's target normalisation from the training set, before training.

The head standardises each property with its mean and std (`AuxPropertyHead.
fit_normalisation`). This wraps the host trainer's `train` so that they are computed once,
before the first step, from the training dataset's full record list (`list_data_dict`,
which the host's dataset loads whole on every rank; the sampler shards only the order), so
every rank and every step uses the same numbers. A record with a non-finite property is
an error naming the record, raised before any training. On `resume_from_checkpoint` the
checkpoint's saved statistics (the ones its weights were trained with) are loaded over
these by the Trainer. A no-op for models without the head.
"""

from __future__ import annotations

import functools

from . import _host


def fit_aux_normalisation(model, dataset) -> None:
    """Fit every auxiliary property head in ``model`` from ``dataset``'s records."""
    from deepmolm_plugin.data.records import record_id
    from deepmolm_plugin.property.aux_head import AuxPropertyHead

    heads = [m for m in model.modules() if isinstance(m, AuxPropertyHead)]
    if not heads:
        return
    records = getattr(dataset, "list_data_dict", None)
    if records is None:
        raise ValueError(f"the auxiliary property head fits its target normalisation from the training records, "
                         f"but the training dataset ({type(dataset).__name__}) has no `list_data_dict`")
    properties = [record.get("properties") for record in records]
    ids = [record_id(record, i) for i, record in enumerate(records)]
    for head in heads:
        head.fit_normalisation(properties, ids)


def apply() -> None:
    _host.require_host("aux_property_stats")
    from llava.train import llava_trainer

    cls = llava_trainer.LLaVATrainer

    def _apply():
        host_train = cls.train

        @functools.wraps(host_train)
        def train(self, *args, **kwargs):
            fit_aux_normalisation(self.model, self.train_dataset)
            return host_train(self, *args, **kwargs)

        cls.train = train

    _host.apply_once(llava_trainer, "aux_property_stats", _apply)
