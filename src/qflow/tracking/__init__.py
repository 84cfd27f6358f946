"""The ``qf.log_*`` API steps call, and trackers built on the plugin hooks."""
