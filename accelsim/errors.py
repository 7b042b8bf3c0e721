"""The one exception type that reaches users: a one-line message that names the problem."""


class AccelsimError(ValueError):
    """Bad user input (a chip file, a shape, a dtype, a model). The CLI prints it on one line and exits 2."""
