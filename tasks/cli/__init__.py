"""The `human3r` command line: the group in `main`, one module per command group."""
