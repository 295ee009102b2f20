"""The one error type of the deliver stage."""


class DeliveryError(RuntimeError):
    """A delivery that could not be made; the message names the workspace (or operator) and the setting to fix."""
