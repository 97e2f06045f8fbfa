# services.bluegreen-edge.maintenance: read-only mode and its planned window. The queue that
# keeps writes during maintenance has a file of its own, queue-options.nix.
{ config, lib, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (lib) mkOption types;
  inherit (import ./common.nix { inherit lib cfg; }) stateOnly;
in
{
  options.services.bluegreen-edge.maintenance = {
    enable = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Read-only mode: `POST`, `PUT`, `PATCH` and `DELETE` are answered by the edge with
        {option}`services.bluegreen-edge.maintenance.status`, a `Retry-After` header and a
        stable JSON body ({option}`services.bluegreen-edge.maintenance.body`); reads keep
        being served by the arms.
      '' + stateOnly;
    };
    status = mkOption {
      type = types.enum [ 503 423 ];
      default = 503;
      description = ''
        Status of refused writes: 503 (Service Unavailable) or 423 (Locked).
      '' + stateOnly;
    };
    retryAfter = mkOption {
      type = types.ints.between 1 86400;
      default = 30;
      description = "Seconds sent in `Retry-After` with every refused write." + stateOnly;
    };
    banner = mkOption {
      type = types.strMatching "[A-Za-z0-9 .,:!?()'/_-]{0,200}";
      default = "";
      example = "Read-only until 14:00 UTC for a database upgrade.";
      description = ''
        A message every response carries in `X-Bluegreen-Banner` while read-only.
      '' + stateOnly;
    };
    body = mkOption {
      # One line, no quote or `$`: what bluegreen renders, and safe wherever it is sent.
      type = types.strMatching "[^'$\\\n]{1,1000}";
      default = builtins.toJSON {
        error = "maintenance";
        status = cfg.maintenance.status;
        retryAfter = cfg.maintenance.retryAfter;
        message = "The service is read-only for maintenance; retry later.";
      };
      defaultText = lib.literalMD "the JSON body the local platform sends (`maintenance_body` in bluegreen/switch.py)";
      description = ''
        The body of every refused write: a stable, machine-readable JSON error that clients
        can act on.
      '' + stateOnly;
    };

    window = {
      start = mkOption {
        type = types.nullOr types.ints.unsigned;
        default = null;
        example = 1795996800;
        description = ''
          Planned start of the maintenance window, seconds since the epoch (UTC), shown at
          `/_bluegreen/status` and `/_bluegreen/status.html`.
        '' + stateOnly;
      };
      end = mkOption {
        type = types.nullOr types.ints.unsigned;
        default = null;
        description = ''
          Planned end of the window; while maintenance is on and it is ahead, `Retry-After`
          counts down to it.
        '' + stateOnly;
      };
    };
  };
}
