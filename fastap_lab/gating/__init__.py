"""Respiratory gating against a breath-hold reference (``python -m fastap_lab.gate``).

``trace`` (smoothing, thresholds, hysteresis, minimum windows), ``scores`` (cosine, surrogate
closeness, MIND descriptors, placing an image on the surrogate), ``agreement`` (F1 against
labels, error against a ground-truth displacement), ``sequence`` (the scored sequence and its
summary), ``scoring`` / ``stream`` (scores in memory or streamed from a video), ``outputs`` (trace.csv,
gated_frames.csv, trace.png, the newest gate folder). Config -> scored sequence is glue:
:mod:`fastap_lab.gate_inputs`. Pure: no Lightning, no Hydra.
"""
