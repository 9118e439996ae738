"""Respiratory gating against a breath-hold reference (``python -m fastap_lab.gate``).

``trace`` (smoothing, thresholds, hysteresis, minimum windows), ``scores`` (cosine, surrogate
closeness, MIND descriptors, placing an image on the surrogate), ``agreement`` (F1 against
labels, error against a ground-truth displacement), ``sequence`` (the scored sequence and its
summary), ``scoring`` / ``stream`` (scores in memory or streamed from a video), ``inputs`` (the
sequence and reference read and scored in memory), ``outputs`` (trace.csv, gated_frames.csv,
gate.json, trace.png, the newest gate folder), ``run`` (one gate end to end, from plain values).
Config -> plain values is glue: :mod:`fastap_lab.respiratory_config`. Pure: no Lightning, no Hydra.
"""
