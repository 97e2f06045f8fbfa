# services.bluegreen-edge.limits: the edge-wide request rate limit and connection cap.
{ config, lib, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (lib) mkOption types;
  inherit (import ./common.nix { inherit lib cfg; }) stateOnly;
in
{
  options.services.bluegreen-edge.limits = {
    rate = mkOption {
      type = types.ints.between 0 1000000;
      default = 0;
      example = 500;
      description = ''
        Requests per second the edge passes on to the arms, edge-wide; more are answered
        429 with `Retry-After`. 0 is no limit. bluegreen's own probes (their
        `X-Bluegreen-Probe` is {option}`services.bluegreen-edge.probeToken`) are never counted.
      '';
    };
    burst = mkOption {
      type = types.ints.between 0 1000000;
      default = 0;
      description = ''
        Requests above {option}`services.bluegreen-edge.limits.rate` accepted at once
        before the limit answers 429.
      '';
    };
    connections = mkOption {
      type = types.ints.between 0 1000000;
      default = 0;
      example = 2000;
      description = ''
        Concurrent connections the edge serves; more are answered 503 with `Retry-After`.
        0 is no cap.
      '';
    };
    retryAfter = mkOption {
      type = types.ints.between 1 3600;
      default = 1;
      description = "Seconds sent in `Retry-After` with every answer the limits refuse." + stateOnly;
    };
    until = mkOption {
      type = types.nullOr types.ints.unsigned;
      default = null;
      example = 1767225600;
      description = ''
        When the limits stop applying, in seconds since the epoch (the edge node's clock);
        null: they always apply. bluegreen sets it to the time of a change that moves
        traffic plus bluegreen:limitHoldSeconds when bluegreen:limitWhen is "hold", so that
        the limits protect the arms for the hold after a flip.
      '' + stateOnly;
    };
  };
}
