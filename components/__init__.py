"""The component resources every platform shares: `Arm` (one colour) and `Edge` (the switch)."""

from components.arm import Arm, ArmArgs
from components.edge import Edge, EdgeArgs, arm_from_stack

__all__ = ["Arm", "ArmArgs", "Edge", "EdgeArgs", "arm_from_stack"]
