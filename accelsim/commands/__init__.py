"""One module per CLI subcommand, each with ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``."""
