"""Metrics of networks and predictions, and the rewards made from them."""
