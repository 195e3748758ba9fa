"""Activation-ranked channel pruning: the DVC stages and the modules they share."""
