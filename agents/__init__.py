"""What bluegreen runs on hosts, apart from the command and the Pulumi program: on the edge host
the maintenance queue's service and its store (`agents.edge`), on an arm host the background
writer's wrapper and its lease reader (`agents.arm`). They import the core (`bluegreen/`) and
nothing else, so a node carries the core and its agents only (nixos/pkgs/bluegreen-tools.nix)."""
