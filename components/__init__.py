"""The component resources every platform shares: `Arm` (one colour), `Edge` (the switch) and
`Data` (the database the arms share)."""

from components.arm import Arm, ArmArgs
from components.data import Data, DataArgs, data_from_stack
from components.edge import Edge, EdgeArgs, arm_from_stack

__all__ = [
    "Arm",
    "ArmArgs",
    "Data",
    "DataArgs",
    "Edge",
    "EdgeArgs",
    "arm_from_stack",
    "data_from_stack",
]
