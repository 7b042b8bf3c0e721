"""The one exception type that reaches users: a one-line message that names the problem."""


class AccelsimError(ValueError):
    """Bad user input (a chip file, a shape, a dtype, a model). The CLI prints it on one line and exits 2."""


class NotPriceable(AccelsimError):
    """A construct whose cost depends on array data (a data-dependent ``lax.cond`` or while loop, say).

    ``primitive`` is the jaxpr primitive that could not be counted and ``scope`` its ``jax.named_scope``."""

    def __init__(self, message: str, primitive: str = "", scope: str = "") -> None:
        super().__init__(message)
        self.primitive, self.scope = primitive, scope


class TooLarge(AccelsimError):
    """A request past a modelling limit (``accelsim.cost.blocks.MAX_EVALUATED``): valid, but too large to count."""
