"""The report's sections 1–3.

Each is a list of :mod:`~fastap_lab.report.document` blocks built from a :class:`Context`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fastap_lab.evaluation import guard
from fastap_lab.report import facts
from fastap_lab.report.collect import Run
from fastap_lab.report.document import (
    Block,
    BulletList,
    Figure,
    Heading,
    Item,
    Paragraph,
    Quote,
    Table,
)

DASH = "—"


def f4(value) -> str:
    """``value`` with 4 decimals; a dash for None or NaN."""
    return (
        DASH
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.4f}"
    )


def signed(value) -> str:
    """``value`` with its sign and 4 decimals; a dash for None or NaN."""
    return DASH if value is None or math.isnan(value) else f"{value:+.4f}"


@dataclass
class Context:
    """What every section reads: the run, the optional baseline, the words, the options."""

    run: Run
    baseline: Run | None
    t: object  # i18n.translator(lang)
    threshold: float
    top: int
    plot_name: str | None


def title(c: Context) -> str:
    """The report's title: the run's stage and name."""
    return c.t("title", stage=c.run.stage, run=c.run.name)


def header(c: Context) -> list[Block]:
    """The title, the introduction (time, run, baseline) and a line per unfinished stage."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    intro = [c.t("intro", now=now, path=c.run.path)]
    if c.baseline is not None:
        intro.append(c.t("intro_baseline", path=c.baseline.path, stage=c.baseline.stage))
    blocks = [Heading(1, title(c)), Paragraph(*intro)]
    for run in (c.run.parent, c.run):
        if run is not None and run.unfinished:
            blocks.append(Paragraph(unfinished_line(c.t, run)))
    return blocks


def unfinished_line(t, run: Run) -> str:
    """The warning that ``run`` is unfinished, with its epochs so far (``t``: the words)."""
    epochs, max_epochs = run.unfinished
    return t("unfinished", epochs=epochs, max_epochs=max_epochs or DASH, path=run.path)


def summary(c: Context) -> list[Block]:
    """Section 1: the evaluation's files and settings, the checkpoint, parent and config."""
    t, run, ev = c.t, c.run, c.run.evaluation
    items: list[str | Item] = []
    if ev is not None:
        m = ev.metrics
        items += [
            t("evaluated_at", value=m.get("utc_time", DASH)),
            t("device", value=m.get("device", DASH)),
            t("checkpoint", value=m.get("checkpoint") or run.checkpoint),
            t("embeddings", value=ev.path / "embeddings.npy"),
            t("metrics_file", value=ev.path / "metrics.json"),
            t(
                "eval_set",
                split=m.get("split"),
                queries=m.get("num_frames_evaluated"),
                frames=m.get("num_frames"),
                window=m.get("exclusion_window"),
            ),
        ]
    else:
        items.append(t("checkpoint", value=run.checkpoint))
    if run.parent is not None:
        items.append(t("parent", value=run.parent.path))
    items.append(Item(t("config"), tuple(config_items(run))))
    return [Heading(2, t("s1")), BulletList(tuple(items))]


def config_items(run: Run) -> list[str]:
    """The settings the reference report lists, for this run and its SimSiam parent."""
    cfg = run.config
    model, backbone = cfg.get("model", {}), cfg.get("backbone", {})
    items = [
        f"backbone = {backbone.get('name', DASH)} / projector_dim = "
        f"{model.get('projector_dim', DASH)} / embedding_dim = {model.get('embedding_dim', DASH)}"
        + (f" / predictor_dim = {model['predictor_dim']}" if "predictor_dim" in model else "")
    ]
    simsiam = run.parent if run.stage == "fastap" else run
    if simsiam is not None:
        items.append("SimSiam: " + stage_settings(simsiam.config))
    if run.stage == "fastap":
        loss = cfg.get("loss", {})
        items.append(
            f"FastAP: {stage_settings(cfg)} / bins = {loss.get('bins')} / kernel = "
            f"{loss.get('kernel')} / sigma = {loss.get('sigma')}"
        )
        items.append(
            f"freeze_backbone = {model.get('freeze_backbone')} / freeze_projector = "
            f"{model.get('freeze_projector')} / positives = {loss.get('positives')}"
            + (f" (window {loss.get('window')})" if loss.get("positives") == "temporal" else "")
        )
    data = cfg.get("data", {})
    items.append(
        f"data: root = {data.get('root') or 'phantom'} / split = {data.get('split')}"
        f" / image_size = {data.get('image_size')} / augment = {_augment(cfg)}"
    )
    return items


def stage_settings(cfg: dict) -> str:
    """One line of a stage's training settings: epochs, batch, LR, optimizer, scheduler."""
    optimizer, scheduler = cfg.get("optimizer", {}), cfg.get("scheduler") or {}
    return (
        f"epochs = {cfg.get('trainer', {}).get('max_epochs')} / batch = "
        f"{cfg.get('data', {}).get('batch_size')} / LR = {optimizer.get('lr')} / "
        f"{_short(optimizer.get('_target_'))} / "
        f"{_short(scheduler.get('_target_')) or 'no scheduler'}"
    )


def _short(target) -> str:
    return str(target).rsplit(".", 1)[-1] if target else ""


def _augment(cfg: dict) -> str:
    augment = cfg.get("augment") or {}
    return (
        "none"
        if not augment
        else f"shift {augment.get('max_shift')}, rotation {augment.get('max_rotation')}"
    )


def training(c: Context) -> list[Block]:
    """Section 2: the training of each stage (parent first) and the loss plot."""
    t = c.t
    blocks: list[Block] = [Heading(2, t("s2"))]
    stages = [r for r in (c.run.parent, c.run) if r is not None]
    for number, run in enumerate(stages, start=1):
        blocks.append(Heading(3, f"2.{number} {t('stage_' + run.stage)} (`{run.name}`)"))
        blocks.append(BulletList(tuple(stage_lines(t, run))))
    if c.plot_name:
        blocks.append(Figure(c.plot_name, t("loss_plot")))
    return blocks + [Paragraph(f"_{t('epochs_note')}_")]


def stage_lines(t, run: Run) -> list[str]:
    """Loss, milestones, timing, collapse monitor and val/mAP of one stage (epochs from 1)."""
    s = facts.stage_summary(run)
    warning = [unfinished_line(t, run)] if run.unfinished else []
    if s is None:
        return [*warning, t("no_log", path=run.path)]
    final, best = f4(s.final_loss), f4(s.best_loss)
    steps = [t("milestone", epoch=e + 1, loss=f4(v)) for e, v in s.milestones]
    lines = warning + [
        t("loss_final", epochs=s.epochs, final=final, best=best, best_epoch=s.best_epoch + 1),
        t("milestones", values=t("list_separator").join(steps)),
    ]
    if run.stage == "fastap":
        lines.append(t("fastap_loss"))
    if s.epoch_time:
        low, high, total = s.epoch_time
        minutes = f"{total / 60:.1f}"
        lines.append(
            t("epoch_time", low=f"{low:.1f}", high=f"{high:.1f}", total=f"{total:.0f}",
                     minutes=minutes)
        )  # fmt: skip
    if s.z_std:
        lines.append(t("z_std", first=f4(s.z_std[0]), last=f4(s.z_std[1])))
    return lines + _val_map_lines(t, s.val_map)


def _val_map_lines(t, val_map: list[tuple[int, float]]) -> list[str]:
    if not val_map:
        return []
    best = max(val_map, key=lambda item: item[1])
    (e0, v0), (e1, v1) = val_map[0], val_map[-1]
    return [
        t("val_map", first=f4(v0), first_epoch=e0 + 1, last=f4(v1), last_epoch=e1 + 1,
                 best=f4(best[1]), best_epoch=best[0] + 1)
    ]  # fmt: skip


def not_evaluated(c: Context) -> Quote:
    """The quote saying that the run has no evaluation yet."""
    return Quote(c.t("not_evaluated", path=c.run.path))


def metrics(c: Context) -> list[Block]:
    """Section 3: the metrics table (beside the baseline's) and the raw-pixel guard's verdict."""
    t, ev = c.t, c.run.evaluation
    blocks: list[Block] = [Heading(2, t("s3"))]
    if ev is None:
        return blocks + [not_evaluated(c)]
    this = ev.metrics.get("metrics")
    if not this:
        reason = ev.metrics.get("metrics_skipped") or "—"
        return blocks + [Paragraph(t("no_metrics", reason=reason))]
    base = _base_metrics(c)
    head = [t("metric"), t("this_run")] + ([t("baseline"), t("delta")] if base is not None else [])
    rows = []
    for name in facts.metric_names(this):
        cells = [metric_label(name), f"**{f4(this[name])}**"]
        if base is not None:
            other = base.get(name)
            cells += [f4(other), signed(this[name] - other) if other is not None else DASH]
        rows.append(tuple(cells))
    return blocks + [Table(tuple(head), tuple(rows))] + _pixel_verdict(t, ev.metrics)


def _pixel_verdict(t, record: dict) -> list[Block]:
    """The raw-pixel guard's verdict (metrics.json pixel_baseline), in bold when it fails."""
    line = guard.verdict_line(record.get("metrics"), record.get("pixel_baseline"))
    if line is None:
        return []
    verdict = record["pixel_baseline"]
    text = t("pixel_guard", line=line, size=verdict.get("size"))
    return [Paragraph(text if verdict["beats_pixels"] else f"**{t('pixel_warning')}** {text}")]


def _base_metrics(c: Context) -> dict | None:
    if c.baseline is None or c.baseline.evaluation is None:
        return None
    return c.baseline.evaluation.metrics.get("metrics") or None


def metric_label(name: str) -> str:
    """The display name of a metrics.json metric (``precision@10`` -> ``Precision@10``)."""
    labels = {"r_precision": "R-precision", "map@r": "MAP@R"}
    if name.startswith(("precision@", "recall@")):
        kind, k = name.split("@")
        return f"{kind.capitalize()}@{k}"
    return labels.get(name, name)


def paths_for_notes(c: Context) -> tuple[Path, Path]:
    """The paths of the evaluation's retrieval_grid.png and diagnostics.png."""
    ev = c.run.evaluation
    return ev.path / "retrieval_grid.png", ev.path / "diagnostics.png"
