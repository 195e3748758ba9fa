"""The whole network: how much each conv layer can lose (`sensitivity`), and pruning every
layer at once to a FLOPs budget (`budget`), written once against `PrunableNet.layers`."""

# The budget strategies' names, without importing NumPy-heavy code (params validation reads them).
STRATEGY_NAMES = ("uniform", "sensitivity", "global")
