"""Builds the policy pack and serves it: PolicyPack(...) never returns, so nothing else is here."""

import os
import sys

# The engine runs this directory as a script; the policies import the project's own modules.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policy.rules import POLICIES  # noqa: E402

PolicyPack(name="bluegreen", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
