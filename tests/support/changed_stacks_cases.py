"""What tests/unit/test_changed_stacks.py and tests/integration/test_changed_stacks.py share."""

STACKS = ["blue", "green", "live"]
