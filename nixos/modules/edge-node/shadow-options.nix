# services.bluegreen-edge.shadow: a share of live requests copied to the idle arm.
{ config, lib, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (lib) mkOption types;
  inherit (import ./common.nix { inherit lib cfg; }) stateOnly;
in
{
  options.services.bluegreen-edge.shadow = {
    percent = mkOption {
      type = types.ints.between 0 100;
      default = 0;
      example = 10;
      description = ''
        Share of live requests, in percent, that the edge mirrors to the idle arm; its
        answers are discarded. Never during a canary split, never for bluegreen's probes.
        0 is off; switching it on or off changes nginx.conf, changing the share does not.
      '' + stateOnly;
    };
    writes = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Mirror writes (POST, PUT, PATCH, DELETE) too; off by default, since a mirrored write
        has effects on the idle arm.
      '' + stateOnly;
    };
  };
}
