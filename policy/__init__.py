"""bluegreen's policy pack: `pulumi preview|up --policy-pack policy`. Policies live in rules.py."""
