"""Pure ML core of the MangaAssist intent classifier.

Nothing in this package imports Dagster: data handling, the focal loss, the training loop,
metrics and model I/O can be tested and reused on their own. Dagster assets, sensors and
resources are thin layers over it.
"""

__version__ = "0.1.0"
