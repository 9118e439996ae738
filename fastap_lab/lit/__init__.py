"""Lightning glue around the pure core.

The SimSiam and FastAP stage modules, the datamodule, callbacks and W&B media.
"""
