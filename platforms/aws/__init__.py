"""AWS: each arm is an Auto Scaling group behind its own target group; the edge is an ALB.

The traffic switch is the live ALB listener's default action: one weighted `forward` over both
arms' target groups. A flip or a canary step changes two integers on one listener, which the ALB
applies to new requests at once; no instance, target group or DNS record changes.

Every arm also has a small ALB of its own that reaches it alone: the policy pack smoke-tests the
idle arm through it before any traffic moves, and people can try the new version there.

Nothing here creates resources inside `apply()`; the preview shows everything `up` will do.

The arm is aws_arm.py's (in further regions arm_regions.py's), the live edge aws_edge.py's (its
switch alb_switch.py, its metrics alb_metrics.py, its sites in several regions alb_sites.py);
aws_places.py reads a region's place (region, VPC, subnets) for both, and vpc.py has the network,
security groups and load balancers both use. The data stack's database is RDS PostgreSQL
(aws_data.py); an arm with bluegreen:schemaRevision reads its DSN from SSM at boot
(aws_arm_data.py).
"""

from __future__ import annotations

from platforms.aws.aws_arm import AwsArm
from platforms.aws.aws_data import AwsData
from platforms.aws.aws_edge import AwsEdge

ARM = AwsArm
EDGE = AwsEdge
DATA = AwsData
