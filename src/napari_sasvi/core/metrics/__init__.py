"""Metrics: frame-wise accuracy against ground truth (Dice, IoU), temporal consistency (T, F), and
the generators that evaluate label sources with them."""
