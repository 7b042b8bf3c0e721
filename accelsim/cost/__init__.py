"""From counts to cycles and time on a chip."""
