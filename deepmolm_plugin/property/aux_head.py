"""KFLM2 as DeepMoLM's auxiliary task: a property head on the LLM's pooled hidden states.

The LLM side of KFLM2 (a mean-pooled last hidden state) is DeepMoLM's own LLM here,
fused with the molecular-graph branch (D-MPNN) by the same `PropertyModel` the standalone
tool uses (gated fusion by default). Pooling covers the positions the LM loss does not
supervise — image tokens and prompt — so training and evaluation, where no answer exists
yet, pool over the same positions.

Targets come from records' `properties: {name: value}` and are standardised with each
property's mean and sample std over the whole training set, fitted once before the first
step (`fit_normalisation`, called by the `aux_property_stats` patch when the trainer
starts) and never updated by training: every step, and every rank, standardises with the
same numbers (a running mean would give early steps targets on a scale that later steps
no longer use, and a rank's shard would give each rank its own scale). They are buffers
(`count`, `mean`, `m2` = sum of squared deviations), so they are saved with the model and
used unchanged at inference. A non-finite or non-numeric property value is an error naming
the record. A record without a property contributes nothing to that property's loss: the
loss is a mean over the labels present. Property names in the records that the head does
not train are named in one warning when the statistics are fitted.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from collections import Counter
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from ..checkpoint_config import HEAD_NAMES_FIELD, HEAD_TASK_FIELD, property_names_problem
from ..model.heads import register_head
from ..usage import DataError
from .features import GraphBatch, collate_graphs
from .models import PropertyModel

logger = logging.getLogger(__name__)


# The std floor of heads saved before `names_digest` existed: they trained with it, and
# predict with it (their targets were divided by it).
LEGACY_STD_FLOOR = 1e-6

# The normalisation statistics: float64 whatever dtype the head is cast to (`AuxPropertyHead._apply`).
STAT_BUFFERS = ("count", "mean", "m2")


def _float64_zeros(n: int) -> torch.Tensor:
    """(n,) float64 zeros, also inside DeepSpeed ZeRO-3's zero.Init: it wraps torch.zeros to
    return its training dtype whatever dtype is asked (bf16 statistics, into which
    `from_pretrained` then copied a checkpoint's mean of 301.5 as 302.0); the cast after it is
    not wrapped."""
    return torch.zeros(n, dtype=torch.float64).to(torch.float64)


class AuxPropertyHead(nn.Module):
    def __init__(self, llm_hidden_size: int, names: Sequence[str], fusion: str = "gated", hidden: int = 128,
                 depth: int = 3):
        super().__init__()
        if not names:
            raise ValueError("the auxiliary property head needs at least one property name")
        self.names: List[str] = list(names)
        self.model = PropertyModel(len(self.names), graph=True, embed_dim=llm_hidden_size, fusion=fusion,
                                   hidden=hidden, depth=depth, ffn_hidden=hidden, fusion_dim=hidden)
        n = len(self.names)
        self.register_buffer("count", _float64_zeros(n))
        self.register_buffer("mean", _float64_zeros(n))
        self.register_buffer("m2", _float64_zeros(n))
        # Which output is which property is config.json's `aux_properties` order; saved with the
        # weights too, so that a config whose list was reordered is refused (`names_problem`):
        # each prediction went to another property's name, without a word.
        self.register_buffer("names_digest", names_digest(self.names))
        # the smallest std targets are divided by: none but > 0 (`saved_before_names`)
        self.std_floor = torch.finfo(torch.float64).tiny
        self.fitted = False  # set by fit_normalisation; training refuses to start without it

    def _apply(self, fn, recurse=True):
        """As nn.Module's (`.to`, `.half()`, `.bfloat16()`, `.cuda()`...: each is `_apply`),
        except that the normalisation statistics stay float64. A cast of the model rounded
        them with the weights (`from_pretrained(p).to(torch.bfloat16)`: an MW mean of 305.2
        became 306.0, every prediction 0.8 Da off without a word; float16 turned a mean
        above 65504 into inf), where loading in that dtype keeps them exact. They still follow
        a device move: `fn` is applied to them as before, and where it changed their dtype,
        their unrounded values go to the device it put them on. DeepSpeed's engine casts
        parameters itself (buffers keep their dtype) and zero.Init does not cast through here;
        a buffer that arrived in another dtype (zero.Init builds them in the training dtype)
        is made float64 here too, which rounds nothing."""
        before = {name: self._buffers[name] for name in STAT_BUFFERS}
        super()._apply(fn, recurse)
        for name, old in before.items():
            new = self._buffers[name]
            if new is None or new.dtype == torch.float64:
                continue
            exact = old if old.dtype == torch.float64 else new
            self._buffers[name] = exact.to(device=new.device, dtype=torch.float64)
        return self

    def targets(self, properties: Sequence[Optional[Dict[str, float]]], device,
                record_ids: Optional[Sequence[str]] = None) -> tuple:
        """Records' property dicts -> values (B, n) float64 and mask (B, n) bool.

        A value that is not a finite number raises, naming the record (``record_ids``, else
        its position in ``properties``): a NaN or inf target would turn every later loss,
        gradient and weight into NaN.
        """
        values = torch.zeros(len(properties), len(self.names), dtype=torch.float64)
        mask = torch.zeros_like(values, dtype=torch.bool)
        for i, props in enumerate(properties):
            where = record_ids[i] if record_ids is not None else f"#{i} of the batch"
            for j, name in enumerate(self.names):
                value = _finite_value(props, name, where)
                if value is not None:
                    values[i, j], mask[i, j] = value, True
        return values.to(device), mask.to(device)

    @torch.no_grad()
    def fit_normalisation(self, properties: Sequence[Optional[Dict[str, float]]],
                          record_ids: Sequence[str]) -> None:
        """Set the per-property mean and variance from the training set's labels, once, before training.

        ``properties`` holds every training record's property dict (None: no properties), the
        whole training list rather than one rank's shard, so all ranks get the same numbers.
        New float64 tensors replace the buffers: exact whatever dtype the model was cast to.
        """
        values, mask = self.targets(properties, "cpu", record_ids)
        count = mask.sum(0).to(torch.float64)
        absent = [name for name, c in zip(self.names, count.tolist()) if c == 0]
        if absent:
            raise DataError(f"auxiliary properties {absent} have no value in any of the {len(properties)} training "
                             f"records: check --aux_properties against the records' `properties` keys")
        self._report_untrained(properties)
        mean = (values * mask).sum(0) / count
        m2 = (((values - mean) * mask) ** 2).sum(0)
        # all labels equal (min == max: their m2 is rounding, 1e-34, not always 0)
        low = torch.where(mask, values, torch.full_like(values, float("inf"))).amin(0)
        high = torch.where(mask, values, torch.full_like(values, float("-inf"))).amax(0)
        constant = [f"{name} ({int(c)} labels, all {lo:g})" if c > 1 else f"{name} (1 label, {lo:g})"
                    for name, c, lo, hi in zip(self.names, count.tolist(), low.tolist(), high.tolist()) if lo == hi]
        if constant:  # one value (or one label: its std was taken as 1, its one target 0): nothing to learn
            raise DataError(f"auxiliary properties with one value in every training record have nothing to learn: "
                            f"{', '.join(constant)}; leave them out of --aux_properties")
        device = self.mean.device
        self.count, self.mean, self.m2 = count.to(device), mean.to(device), m2.to(device)
        self.fitted = True

    def _report_untrained(self, properties: Sequence[Optional[Dict[str, float]]]) -> None:
        """Say which of the records' property names the head does not train, and how many
        records carry none of its names: a spelling that differs between sources
        ("log solubility" / "logS") would otherwise drop those labels without a word.
        Training on a subset of the properties is legitimate, so this is a warning."""
        known = set(self.names)
        other = Counter(name for props in properties if props for name in props if name not in known)
        if not other:
            return
        without = sum(1 for props in properties if props and not known.intersection(props))
        logger.warning("auxiliary property head: the training records' properties %s are not in its names %s and "
                       "are not trained (records carrying them: %s); %d records with properties have none of its "
                       "names and give it no label", sorted(other), self.names, dict(other.most_common()), without)

    def check_fitted(self) -> None:
        """Training must standardise with the training set's statistics, not the zeros of a fresh head."""
        if not self.fitted:
            raise RuntimeError("the auxiliary property head's target normalisation was not fitted: call "
                               "fit_normalisation with the training records before training (the "
                               "aux_property_stats patch does so when the host's trainer starts)")

    @torch.no_grad()
    def saved_before_names(self) -> None:
        """Loaded from a checkpoint saved before `names_digest` existed: its order cannot be
        checked (zeros, not the uninitialised memory the missing buffer was built in), and it
        trained with the std floor of then, which its predictions keep."""
        self.names_digest.zero_()
        self.std_floor = LEGACY_STD_FLOOR

    def names_problem(self) -> Optional[str]:
        """Why the saved weights do not belong to `names` (config.json's aux_properties), or
        None. A head saved before the digest existed has zeros there and is not checked."""
        saved = self.names_digest.detach().cpu()
        if not saved.any() or torch.equal(saved, names_digest(self.names)):
            return None
        return (f"its auxiliary property head was trained for other properties, or another order of them, than "
                f"config.json's aux_properties {self.names}: each prediction would go to another property's name; "
                "restore the list as training wrote it")

    @property
    def std(self) -> torch.Tensor:
        """Each property's sample std over the training labels (at least two, not all equal:
        `fit_normalisation`). Not clamped to an absolute floor: a clamp at 1e-6 made labels
        of 1e-9 mol/L targets of 0.0015 and predictions 400 times too large."""
        var = torch.where(self.count > 1, self.m2 / (self.count - 1).clamp(min=1), torch.ones_like(self.m2))
        return var.sqrt().clamp(min=self.std_floor)

    def forward(self, pooled: torch.Tensor, graph: GraphBatch) -> torch.Tensor:
        """(B, H) pooled LLM states + graphs -> (B, n) predictions in normalised units."""
        weight = next(self.model.parameters())
        return self.model(graph=graph.to(weight.device, weight.dtype), embed=pooled.to(weight.dtype))

    def loss(self, prediction: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error in normalised units over the labels present (0 if none)."""
        target = ((values - self.mean) / self.std).to(prediction.dtype)
        error = (prediction - target).square() * mask
        return error.sum() / mask.sum().clamp(min=1)

    def denormalize(self, prediction: torch.Tensor) -> torch.Tensor:
        return prediction.double() * self.std + self.mean

    def predict_dicts(self, prediction: torch.Tensor) -> List[Dict[str, float]]:
        values = self.denormalize(prediction).tolist()
        return [dict(zip(self.names, row)) for row in values]

    # --- the optional-head interface (deepmolm_plugin.model.heads) ---------------------
    def batch_loss(self, hidden: torch.Tensor, attention_mask: Optional[torch.Tensor], labels: torch.Tensor,
                   batch: dict) -> torch.Tensor:
        """KFLM2 auxiliary loss: pooled unsupervised positions (B, T, H) + molecular graph ->
        properties. Records without `properties` carry no labels (and no graph): the head
        sees the rest; a batch without any gives a zero that keeps the graph connected."""
        properties, graphs = batch.get("properties"), batch.get("graphs")
        rows = [i for i, p in enumerate(properties or ()) if p is not None]
        if not rows:
            # The head's modules run anyway, on a placeholder, times 0: under ZeRO-3 every
            # forward gathers their partitioned weights collectively, and a rank whose batch
            # had no properties skipped it while the others waited (gloo: "size mismatch";
            # NCCL: a hang).
            placeholder = self(hidden[:1, 0].detach() * 0.0, collate_graphs([_placeholder_graph()]))
            return hidden.sum() * 0.0 + placeholder.sum() * 0.0
        if self.training:
            self.check_fitted()  # standardised by the training set's statistics, fixed before step 1
        values, mask = self.targets([properties[i] for i in rows], hidden.device)
        pooled = pool_unsupervised(hidden, attention_mask, labels)[rows]  # (R, H)
        prediction = self(pooled, collate_graphs([graphs[i] for i in rows]))
        return self.loss(prediction, values, mask)

    def predict(self, hidden: torch.Tensor, attention_mask: Optional[torch.Tensor], batch: dict) -> List[dict]:
        """Predictions for prompts without answers (B, T, H): one {name: value} per sample,
        whose graph is `batch["graphs"][i]`. The model's `predict_properties` hands its
        caller's graphs here unchanged: a count other than the prompts' is a ValueError
        naming both (it was torch's "Sizes of tensors must match" from inside the fusion)."""
        graphs = batch["graphs"]
        if not isinstance(graphs, (list, tuple)):
            raise ValueError(f"predict_properties takes its graphs as a list, one per prompt, in order; got a "
                             f"{type(graphs).__name__}")
        prompts = hidden.shape[0]
        if len(graphs) != prompts:
            raise ValueError(f"predict_properties got {prompts} prompt{'s' if prompts != 1 else ''} but {len(graphs)} "
                             "graph(s): give one graph per prompt, in order")
        pooled = pool_unsupervised(hidden, attention_mask, None)  # (B, H)
        return self.predict_dicts(self(pooled, collate_graphs(graphs)))


def build_kflm2_head(config) -> AuxPropertyHead:
    """`--aux_property_task kflm2`: the head over the LLM width, one output per property.
    A config without a usable `aux_properties` is a ValueError naming it (the loader says
    "cannot build the model its config.json describes"): it was an AttributeError traceback
    when absent, and a string was split into one output per character."""
    names = getattr(config, HEAD_NAMES_FIELD, None)
    if names is None:
        raise ValueError(f"the model config has {HEAD_TASK_FIELD} 'kflm2' but no {HEAD_NAMES_FIELD} (the property "
                         "names the head predicts, in training's order)")
    problem = property_names_problem(names)
    if problem:
        raise ValueError(f"the model config's {HEAD_NAMES_FIELD} is {names!r}, {problem}")
    return AuxPropertyHead(config.hidden_size, list(names))


register_head("kflm2", build_kflm2_head)


def _finite_value(props: Optional[Dict[str, float]], name: str, where: str) -> Optional[float]:
    """Property ``name`` of one record as a finite float, None if the record lacks it."""
    value = (props or {}).get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"record {where!r}: property {name!r} is {value!r}, not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"record {where!r}: property {name!r} is {value!r}, not a finite number "
                         f"(leave it out of `properties` if it was not measured)")
    return number


@functools.lru_cache(maxsize=1)
def _placeholder_graph():
    """Methane's graph: what the head runs on for a batch without properties (built once:
    it was parsed again on every such training step)."""
    from rdkit import Chem

    from .features import mol_to_graph

    return mol_to_graph(Chem.MolFromSmiles("C"))


def names_digest(names: Sequence[str]) -> torch.Tensor:
    """(32,) uint8: sha256 of the property names in their order."""
    return torch.tensor(list(hashlib.sha256(json.dumps(list(names)).encode()).digest()), dtype=torch.uint8)


def pool_unsupervised(hidden: torch.Tensor, attention_mask: Optional[torch.Tensor],
                      labels: Optional[torch.Tensor], ignore_index: int = -100) -> torch.Tensor:
    """(B, L, H) last hidden states -> (B, H) mean over the attended positions before the
    first supervised one: the prompt, as evaluation has it (it ends where the answer would
    begin). Every unlabelled position was pooled before: the line break after an answer and
    a second turn, which had seen the answer (the head could read its label there)."""
    keep = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
    if attention_mask is not None:
        keep &= attention_mask.bool()
    if labels is not None:
        keep &= (labels != ignore_index).cumsum(1) == 0
    weights = keep.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
