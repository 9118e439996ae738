"""The report's per-stage summary of metrics.csv epochs (report/facts.stage_summary)."""

from pathlib import Path

from fastap_lab.report.collect import Run
from fastap_lab.report.facts import stage_summary


def run_with_losses(losses: list[float]) -> Run:
    epochs = [{"epoch": e, "train/loss": loss} for e, loss in enumerate(losses)]
    return Run(path=Path("run"), config={}, epochs=epochs, evaluation=None)


def test_milestones_quote_each_epoch_once_in_a_short_run():
    # 2 epochs: 20 % and 40 % both fall on the first epoch, 80 % on the second.
    summary = stage_summary(run_with_losses([0.9, 0.7]))
    assert summary.milestones == [(0, 0.9), (1, 0.7)]


def test_milestones_at_20_40_80_percent_of_a_long_run():
    losses = [1.0 - 0.1 * e for e in range(10)]
    summary = stage_summary(run_with_losses(losses))
    assert summary.milestones == [(1, losses[1]), (3, losses[3]), (7, losses[7])]
    assert (summary.best_epoch, summary.final_loss) == (9, losses[9])


def test_no_epochs_gives_no_summary():
    assert stage_summary(run_with_losses([])) is None
