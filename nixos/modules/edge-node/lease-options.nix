# services.bluegreen-edge.lease: the writer lease the edge serves at /_bluegreen/lease
# (switch-state.nix stamps it, unless it is the one lease of several edges).
{ config, lib, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (lib) mkOption types;
  inherit (import ./common.nix { inherit lib cfg; }) color leaseDir stateOnly;
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
    shared = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Whether this is the one lease every edge node of several serves (bluegreen:edges).
        Activation then does not stamp it: the live stack stamps every node at once, once they
        all serve it, so no holder's writers start while another node still serves the old
        holder. Until its stamp exists the edge counts the handover from each request.
      '' + stateOnly;
    };
    holder = mkOption {
      type = types.nullOr color;
      default = null;
      description = ''
        Who holds a {option}`services.bluegreen-edge.lease.shared` lease: the colour every
        edge node serves, or null for nobody (they serve different colours, between the waves
        of a flip). Without `shared` the holder is {option}`services.bluegreen-edge.activeColor`.
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
