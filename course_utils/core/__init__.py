"""The shared base: settings, argument checks, data, the training loop, checkpoints,
distributed training, metrics, plots and the panel machinery.
"""
