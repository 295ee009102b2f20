"""The error a setting that cannot be used raises (settings, the warehouse URL, the CLI report it)."""


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable to fix."""
