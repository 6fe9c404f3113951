"""Quantised networks: fake quantisation with a straight-through estimator (``fake.py``), and what
builds on it (quantisation-aware training, post-training quantisation, bit-width metrics)."""
