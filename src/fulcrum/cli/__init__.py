"""The `fulcrum` command: a thin client over the REST API, plus the commands that start processes."""
