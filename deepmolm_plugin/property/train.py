"""Training with early stopping on the validation set, masked multi-task losses, metrics.

Protocol (what makes the numbers honest):

- The test set is used once, after training, by the model that the *validation* set
  selected (the epoch with the best validation metric; early stopping on validation with
  a patience). Nothing else ever looks at test labels. Several regression targets are
  selected by ``SCALED_RMSE`` (unit-free), not by the mean of their raw RMSEs.
- Missing labels are NaN and masked out of the loss and the metrics (never filled with 0).
- Regression targets are standardised with the training set's mean / std; classification
  uses BCE on logits, and ROC-AUC is computed from the predicted *probabilities*
  (Mann-Whitney U with tie correction), per task; a task with one class in a subset has
  no AUC there and is listed in ``skipped_tasks``; the reported AUC is the mean over the
  tasks that have one.
- Everything is seeded: splits, initialisation, batch order, dropout. The same seed, data
  and configuration reproduce the same numbers exactly (single-threaded CPU).
- ``ensemble`` > 1 (declared in the config and the reports) trains that many members per
  seed, each selected on validation, and averages their predictions (probabilities for
  classification).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..eval.metrics.classes import roc_auc as ranked_roc_auc
from .scaling import FeatureScaler
from .features import MolGraph, collate_graphs
from .models import PropertyModel

TASK_TYPES = ("regression", "classification")


@dataclass
class TrainConfig:
    task: str = "regression"
    graph: bool = True
    fusion: str = "concat"  # none | concat | gated | attention
    hidden: int = 200
    depth: int = 3
    ffn_hidden: int = 200
    ffn_layers: int = 2
    dropout: float = 0.0
    aggregation: str = "mean"
    fusion_dim: int = 128
    heads: int = 4
    epochs: int = 40
    patience: int = 10
    min_epochs: int = 0
    batch_size: int = 50
    lr: float = 1e-3
    init_lr: float = 1e-4
    final_lr: float = 1e-4
    warmup_epochs: float = 2.0
    weight_decay: float = 0.0
    ensemble: int = 1
    bf16: bool = False
    eval_batch_size: int = 1000

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------- metrics
def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC from scores (probabilities), ties counted half; NaN if only one class (the
    evaluation report's classes metric computes it: one implementation)."""
    auc = ranked_roc_auc(score, y_true)
    return float("nan") if auc is None else auc


def regression_metrics(y: np.ndarray, pred: np.ndarray, task_names: Sequence[str],
                       train_std: np.ndarray | None = None) -> dict:
    """Per-task and task-averaged RMSE / MAE / R²; a task without labels in this subset is
    listed in ``skipped_tasks`` (the averages are over the other tasks, which must be said).

    With several targets and ``train_std`` (each target's standard deviation in the seed's
    training subset) also ``rmse_scaled``: the mean over targets of RMSE / training std,
    the RMSE of the standardised targets the model is trained on (``SCALED_RMSE``). A target
    whose training std is 0 or NaN (one value, or no label, there) has no unit-free RMSE: it is
    left out of ``rmse_scaled`` and listed in ``unscaled_tasks`` (was: its raw RMSE divided by
    the 1.0 that standardisation put in, averaged in as if unit-free)."""
    per_task, rmses, maes, r2s, skipped, constant = {}, [], [], [], [], []
    for t, name in enumerate(task_names):
        m = ~np.isnan(y[:, t])
        if not m.any():
            skipped.append(name)
            continue
        err = pred[m, t] - y[m, t]
        rmse = float(np.sqrt(np.mean(err ** 2)))
        mae = float(np.mean(np.abs(err)))
        var = float(np.sum((y[m, t] - y[m, t].mean()) ** 2))
        r2 = float(1 - np.sum(err ** 2) / var) if var > 0 else float("nan")
        if var == 0:  # R² is undefined where every label is the same: said in the report
            constant.append(name)
        per_task[name] = {"rmse": rmse, "mae": mae, "r2": r2, "n": int(m.sum())}
        rmses.append(rmse), maes.append(mae), r2s.append(r2)
    finite_r2 = [r for r in r2s if not math.isnan(r)]
    out = {"rmse": float(np.mean(rmses)) if rmses else float("nan"),
           "mae": float(np.mean(maes)) if maes else float("nan"),
           "r2": float(np.mean(finite_r2)) if finite_r2 else float("nan"), "per_task": per_task,
           "skipped_tasks": skipped, "constant_tasks": constant}
    if train_std is not None and len(task_names) > 1:  # one target: its outputs stay as they were
        scaled, unscaled = [], []
        for t, name in enumerate(task_names):
            if name in per_task:  # (a target without labels here is in skipped_tasks)
                if train_std[t] > 0:  # False for NaN too
                    scaled.append(per_task[name]["rmse"] / float(train_std[t]))
                else:
                    unscaled.append(name)
        out[SCALED_RMSE] = float(np.mean(scaled)) if scaled else float("nan")
        out["unscaled_tasks"] = unscaled
    return out


def classification_metrics(y: np.ndarray, prob: np.ndarray, task_names: Sequence[str]) -> dict:
    per_task, aucs, skipped = {}, [], []
    for t, name in enumerate(task_names):
        m = ~np.isnan(y[:, t])
        auc = roc_auc(y[m, t], prob[m, t]) if m.any() else float("nan")
        if math.isnan(auc):
            skipped.append(name)
            continue
        per_task[name] = {"roc_auc": auc, "n": int(m.sum()), "positives": int(y[m, t].sum())}
        aucs.append(auc)
    return {"roc_auc": float(np.mean(aucs)) if aucs else float("nan"), "per_task": per_task,
            "skipped_tasks": skipped}


def compute_metrics(task: str, y: np.ndarray, pred: np.ndarray, task_names: Sequence[str],
                    train_std: np.ndarray | None = None) -> dict:
    if task == "regression":
        return regression_metrics(y, pred, task_names, train_std)
    return classification_metrics(y, pred, task_names)


def primary_metric(task: str) -> tuple[str, bool]:
    """(name, higher_is_better) of one target's metric (classification: any number of targets)."""
    return ("rmse", False) if task == "regression" else ("roc_auc", True)


# Several regression targets are selected (early stopping, best epoch) and headlined by the
# mean over targets of RMSE / the target's standard deviation in the seed's training subset,
# which is the RMSE of the standardised targets the loss is computed on. Was: the plain mean
# of the raw RMSEs, in each target's own unit: beside Molecular Weight (g/mol, RMSE ~100)
# log-solubility (RMSE ~1) counted for ~1 % of the score. The training split's std (not the
# validation's) keeps the scale fixed over epochs and free of the labels being scored; the
# same scale for test makes the numbers comparable. ROC-AUC is unit-free: no change there.
SCALED_RMSE = "rmse_scaled"
SCALED_RMSE_MEANING = "mean over targets of RMSE / the target's training-split std (unit-free)"


def selection_metric(task: str, n_tasks: int) -> tuple[str, bool]:
    """(name, higher_is_better) of the validation number that early stopping and model
    selection use, and the reports headline: ``primary_metric`` but for several regression
    targets, whose raw RMSEs are in different units (``SCALED_RMSE``)."""
    if task == "regression" and n_tasks > 1:
        return SCALED_RMSE, False
    return primary_metric(task)


def training_std(y_train: np.ndarray) -> np.ndarray:
    """Each target's std over its labels in the training rows, NaN where it has none (computed
    for labelled targets only: numpy's "Degrees of freedom" warning for that NaN, which the
    callers act on, would be noise)."""
    labelled = (~np.isnan(y_train)).sum(0)
    std = np.full(y_train.shape[1], np.nan)
    std[labelled > 0] = np.nanstd(y_train[:, labelled > 0], axis=0)
    return std


# ---------------------------------------------------------------------------------- data
@dataclass
class Inputs:
    """Model inputs for a set of molecules (all rows of one dataset, indexed by position)."""

    graphs: list[MolGraph] | None
    embed: np.ndarray | None = None  # raw featuriser output (scaled per split)
    tokens: list[np.ndarray] | None = None  # LLM token states, for the attention fusion
    scaler_blocks: list | None = None  # FeatureScaler blocks of the featuriser

    def __len__(self) -> int:
        if self.graphs is not None:
            return len(self.graphs)
        return len(self.embed) if self.embed is not None else len(self.tokens or [])


class _Prepared:
    """Inputs with the embedding scaled by a scaler fitted on the training rows."""

    def __init__(self, inputs: Inputs, embed: np.ndarray | None):
        self.inputs = inputs
        self.embed = torch.from_numpy(embed) if embed is not None else None

    def batch(self, idx: np.ndarray) -> dict:
        out: dict = {}
        if self.inputs.graphs is not None:
            out["graph"] = collate_graphs([self.inputs.graphs[i] for i in idx])
        if self.embed is not None:
            out["embed"] = self.embed[torch.from_numpy(np.asarray(idx))]
        if self.inputs.tokens is not None:
            toks = [self.inputs.tokens[i] for i in idx]
            width = max(t.shape[0] for t in toks)
            tokens = np.zeros((len(toks), width, toks[0].shape[1]), dtype=np.float32)
            mask = np.zeros((len(toks), width), dtype=bool)
            for k, t in enumerate(toks):
                tokens[k, :t.shape[0]] = t
                mask[k, :t.shape[0]] = True
            out["tokens"], out["token_mask"] = torch.from_numpy(tokens), torch.from_numpy(mask)
        return out


def build_model(cfg: TrainConfig, n_tasks: int, inputs: Inputs) -> PropertyModel:
    embed_dim = inputs.embed.shape[1] if inputs.embed is not None else None
    token_dim = inputs.tokens[0].shape[1] if inputs.tokens else None
    fusion = cfg.fusion if (cfg.graph and embed_dim) else "none"
    return PropertyModel(
        n_tasks, graph=cfg.graph and inputs.graphs is not None, embed_dim=embed_dim, fusion=fusion,
        hidden=cfg.hidden, depth=cfg.depth, ffn_hidden=cfg.ffn_hidden, ffn_layers=cfg.ffn_layers,
        dropout=cfg.dropout, aggregation=cfg.aggregation, token_dim=token_dim, fusion_dim=cfg.fusion_dim,
        heads=cfg.heads,
    )


# ------------------------------------------------------------------------------ training
def masked_loss(task: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean loss over the observed labels only (NaN targets contribute nothing, not even a 0)."""
    mask = ~torch.isnan(target)
    safe = torch.where(mask, target, torch.zeros_like(target))
    if task == "regression":
        loss = (out - safe) ** 2
    else:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out, safe, reduction="none")
    loss = torch.where(mask, loss, torch.zeros_like(loss))
    return loss.sum() / mask.sum().clamp(min=1)


def _lr_at(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Chemprop's Noam-like schedule: linear warm-up init_lr -> lr, then exponential decay to
    final_lr; ``lr`` is the peak, so the ends are capped at it (with --lr 1e-5 the rate fell
    to 1e-5 at the end of the warm-up, then grew back to init_lr, 1e-4, 10x the asked rate)."""
    init_lr, final_lr = min(cfg.init_lr, cfg.lr), min(cfg.final_lr, cfg.lr)
    warmup = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    total = max(warmup + 1, cfg.epochs * steps_per_epoch)
    if step < warmup:
        return init_lr + (cfg.lr - init_lr) * step / warmup
    gamma = (final_lr / cfg.lr) ** (1.0 / (total - warmup))
    return cfg.lr * gamma ** (step - warmup)


def predict(model: PropertyModel, prepared: _Prepared, idx: np.ndarray, cfg: TrainConfig,
            y_mean: np.ndarray, y_std: np.ndarray) -> np.ndarray:
    """The model's predictions (probabilities, or labels in their unit) for rows ``idx``, in
    float32 also when ``cfg.bf16`` trains under bf16 autocast: was under it too, so outputs
    kept ~8 bits of mantissa; tied test probabilities (47 distinct of 60 on BBBP) moved
    ROC-AUC toward 0.5, validation selected epochs on rounded numbers, and the rounded
    predictions were saved as the model's. (The weights are float32 either way: autocast
    only lowers the precision of the computation.)"""
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(idx), cfg.eval_batch_size):
            batch = prepared.batch(idx[start:start + cfg.eval_batch_size])
            outs.append(model(**batch).float())
    out = torch.cat(outs).numpy() if outs else np.zeros((0, len(y_mean)), np.float32)
    if cfg.task == "regression":
        return out * y_std + y_mean
    return 1.0 / (1.0 + np.exp(-out))


class TrainingDiverged(RuntimeError):
    """A member's training loss became NaN or inf: its predictions would be NaN, and the
    seed's metrics left out of the means like an undefined AUC (a classification message
    explained a diverged regression run)."""


@dataclass
class MemberResult:
    best_epoch: int
    epochs_run: int
    curve: list = field(default_factory=list)  # per epoch: {"epoch", "train_loss", "valid_<metric>"[, "valid_loss"]}


def warm_up() -> None:
    """Pay torch's one-time optimizer set-up now: the first optimizer imports torch._dynamo
    (2-4 s on a 2-core CPU), which was counted in the runtime of whichever seed trained first."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def train_member(inputs: Inputs, prepared: _Prepared, y: np.ndarray, split: dict, cfg: TrainConfig, seed: int,
                 y_mean: np.ndarray, y_std: np.ndarray, task_names: Sequence[str], progress=None):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(cfg, y.shape[1], inputs)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.init_lr, weight_decay=cfg.weight_decay)
    train_idx, valid_idx = split["train"], split["valid"]
    y_scaled = (y - y_mean) / y_std if cfg.task == "regression" else y
    y_t = torch.from_numpy(y_scaled.astype(np.float32))
    metric_name, higher = selection_metric(cfg.task, y.shape[1])
    # the true spread (not `y_std`, which holds 1.0 for none): see `regression_metrics`
    train_std = training_std(y[train_idx]) if cfg.task == "regression" else None
    steps_per_epoch = max(1, math.ceil(len(train_idx) / cfg.batch_size))
    best_score, best_state, best_epoch, bad, step = None, None, -1, 0, 0
    curve = []
    for epoch in range(cfg.epochs):
        model.train()
        order = train_idx[rng.permutation(len(train_idx))]
        total, count = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            if len(idx) == 1 and start > 0 and cfg.batch_size > 1:
                continue  # a 1-molecule tail batch only adds noise (with --batch-size 1 every batch is one)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, steps_per_epoch, cfg)
            batch = prepared.batch(idx)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                out = model(**batch)
            loss = masked_loss(cfg.task, out.float(), y_t[torch.from_numpy(idx)])
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"seed {seed}: training diverged at epoch {epoch + 1}, step {step + 1} (the loss "
                                       f"is {float(loss.detach())}): lower --lr (now {cfg.lr:g}); the seeds finished are kept")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            step += 1
        valid_pred = predict(model, prepared, valid_idx, cfg, y_mean, y_std)
        valid_metrics = compute_metrics(cfg.task, y[valid_idx], valid_pred, task_names, train_std)
        score = valid_metrics[metric_name]
        point = {"epoch": epoch + 1, "train_loss": total / max(count, 1), "valid_" + metric_name: score}
        if metric_name != primary_metric(cfg.task)[0]:  # the raw mean too, as curves held it before
            point["valid_" + primary_metric(cfg.task)[0]] = valid_metrics[primary_metric(cfg.task)[0]]
        shown = f"valid {metric_name} {score:.3f}"
        if math.isnan(score):  # no valid task with two classes: selection falls back to the validation loss
            # (kept apart: stored as the metric, -BCE was drawn and printed as a negative "roc_auc")
            point["valid_loss"] = _plain_loss(cfg.task, valid_pred, y[valid_idx])
            score = -point["valid_loss"] if higher else point["valid_loss"]
            why = "one class" if cfg.task == "classification" else "no target labelled here with a spread in training"
            shown = f"valid loss {point['valid_loss']:.3f} ({metric_name} undefined: {why})"
        curve.append(point)
        improved = best_score is None or (score > best_score if higher else score < best_score)
        if improved:
            best_score, best_epoch, bad = score, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
        if progress is not None:
            progress(epoch + 1, shown)
        if bad >= cfg.patience and epoch + 1 >= cfg.min_epochs:
            break
    model.load_state_dict(best_state)
    return model, MemberResult(best_epoch=best_epoch, epochs_run=len(curve), curve=curve)


def _plain_loss(task: str, pred: np.ndarray, y: np.ndarray) -> float:
    m = ~np.isnan(y)
    if not m.any():
        return float("nan")
    if task == "regression":
        return float(np.mean((pred[m] - y[m]) ** 2))
    p = np.clip(pred[m], 1e-7, 1 - 1e-7)
    return float(-np.mean(y[m] * np.log(p) + (1 - y[m]) * np.log(1 - p)))


def run_seed(inputs: Inputs, y: np.ndarray, split: dict, cfg: TrainConfig, seed: int,
             task_names: Sequence[str], test_sets: dict | None = None, progress=None) -> dict:
    """Train (an ensemble of) model(s) for one seed and evaluate on train / valid / test.

    ``split``: {"train", "valid"[, "test"]} row indices into ``inputs`` / ``y``.
    ``test_sets``: extra fixed test sets {name: (Inputs, y)} (Llinas); their embeddings
    are scaled with the training rows' scaler too.
    """
    if cfg.task not in TASK_TYPES:
        raise ValueError(f"task must be one of {TASK_TYPES}")
    t0, cpu0 = time.perf_counter(), time.process_time()
    train_idx = split["train"]
    if cfg.task == "regression":
        train_std = training_std(y[train_idx])
        y_mean = np.nanmean(y[train_idx], axis=0)
        y_mean = np.where(np.isfinite(y_mean), y_mean, 0.0)
        # for training only (a constant or unlabelled target has nothing to scale); the metrics
        # get `train_std` as it is
        y_std = np.where(train_std > 0, train_std, 1.0)
    else:
        y_mean, y_std, train_std = np.zeros(y.shape[1]), np.ones(y.shape[1]), None
    scaler = None
    if inputs.embed is not None:
        scaler = FeatureScaler(inputs.scaler_blocks or [(0, inputs.embed.shape[1], "standard")])
        scaler.fit(inputs.embed[train_idx])
    prepared = _Prepared(inputs, scaler.transform(inputs.embed) if scaler else None)
    external = {}
    for name, (ext_inputs, ext_y) in (test_sets or {}).items():
        external[name] = (_Prepared(ext_inputs, scaler.transform(ext_inputs.embed) if scaler else None), ext_y)

    subsets = {k: v for k, v in split.items() if k in ("train", "valid", "test")}
    preds = {k: [] for k in subsets}
    ext_preds = {k: [] for k in external}
    members = []
    for k in range(cfg.ensemble):
        member_seed = seed * 1000 + k
        model, info = train_member(inputs, prepared, y, split, cfg, member_seed, y_mean, y_std, task_names,
                                   progress)
        members.append(asdict(info) | {"seed": member_seed})
        for name, idx in subsets.items():
            preds[name].append(predict(model, prepared, idx, cfg, y_mean, y_std))
        for name, (prep, _) in external.items():
            ext_preds[name].append(predict(model, prep, np.arange(len(prep.inputs)), cfg, y_mean, y_std))

    metrics, predictions = {}, {}
    for name, idx in subsets.items():
        p = np.mean(preds[name], axis=0)
        metrics[name] = compute_metrics(cfg.task, y[idx], p, task_names, train_std)
        metrics[name]["n"] = int(len(idx))
        if name != "train":
            predictions[name] = {"index": idx.tolist(), "y": _nan_to_none(y[idx]), "pred": p.tolist()}
    for name, (_, ext_y) in external.items():
        p = np.mean(ext_preds[name], axis=0)
        metrics[name] = compute_metrics(cfg.task, ext_y, p, task_names, train_std)
        metrics[name]["n"] = int(len(ext_y))
        predictions[name] = {"index": list(range(len(ext_y))), "y": _nan_to_none(ext_y), "pred": p.tolist()}
    return {"seed": seed, "metrics": metrics, "members": members, "predictions": predictions,
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0}


def _nan_to_none(a: np.ndarray) -> list:
    return [[None if np.isnan(v) else float(v) for v in row] for row in a]
