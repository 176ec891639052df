"""Loggers: plugins that implement ``hebbcore_epoch_end`` (opt-in, e.g. ``hebbcore run --tensorboard``)."""
