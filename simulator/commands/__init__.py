"""One module per ``simulator`` subcommand: ``add_parser(subparsers)`` registers it (setting
``handler``), the handler runs it and returns the exit status."""
