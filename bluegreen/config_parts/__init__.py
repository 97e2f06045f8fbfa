"""The settings of each feature of the edge stack, one module per feature: its dataclass(es) and
the function that reads them from a stack's config with a `Reader`. `bluegreen.config` assembles
them into the role settings (`ArmSettings`, `EdgeSettings`) and is the one import point for all
of them."""
