# services.bluegreen-edge.lease: the writer lease the edge serves at /_bluegreen/lease
# (switch-state.nix stamps it).
{ config, lib, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (lib) mkOption types;
  inherit (import ./common.nix { inherit lib cfg; }) leaseDir stateOnly;
in
{
  options.services.bluegreen-edge.lease = {
    fence = mkOption {
      type = types.ints.positive;
      default = 1;
      description = ''
        The writer lease's fencing token (`/_bluegreen/lease`): a number that only grows with
        each change of {option}`services.bluegreen-edge.activeColor`, which `bluegreen writer`
        hands to the writers it runs so that a store can refuse one that lost the lease.
      '' + stateOnly;
    };
    since = mkOption {
      type = types.ints.unsigned;
      default = 0;
      description = ''
        When the pointer last moved, in seconds since the epoch, by the clock of the machine
        that ran `pulumi up`: a record for people. The edge serves as the lease's `since` when
        this host began serving {option}`services.bluegreen-edge.lease.fence`, by its own
        clock (a stamp in {file}`${leaseDir}` that activation creates).
      '' + stateOnly;
    };
    handover = mkOption {
      type = types.ints.between 1 600;
      default = 5;
      description = ''
        Seconds after this host began serving {option}`services.bluegreen-edge.lease.fence`
        during which nobody holds the lease, so that the old colour's writers stop before the
        new colour's start.
      '' + stateOnly;
    };
  };
}
