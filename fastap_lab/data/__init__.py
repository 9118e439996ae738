"""Frames and where they come from.

Folder / video / phantom readers, queries, labels.csv, leak-free splits, batch samplers and GPU
augmentation.
"""
