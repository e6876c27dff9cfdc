"""system tests: the whole stack, the CLI end to end, training runs."""
