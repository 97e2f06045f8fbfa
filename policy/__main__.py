"""Builds the policy pack and serves it: PolicyPack(...) never returns, so nothing else is here.

The engine runs this directory as a script (`python policy`), so the pack's own modules import as
`bluegreen_policy`; it needs only pulumi-policy and the standard library (requirements.txt).
"""

from bluegreen_policy.rules import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name="bluegreen", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
