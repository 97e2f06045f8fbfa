"""The operator's tooling: the `bluegreen` command that drives the stacks through a cutover."""
