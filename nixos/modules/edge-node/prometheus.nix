# Prometheus on the edge node (services.bluegreen-edge.prometheus).
{ config, lib, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (import ./common.nix { inherit lib cfg; }) colors nodesOf;
in
{
  config = lib.mkIf cfg.enable {
    # The arms' own metrics for the hold after a flip, scraped where the traffic is switched.
    services.prometheus = lib.mkIf cfg.prometheus.enable {
      enable = true;
      port = cfg.prometheus.port;
      # A hold lasts minutes and its baseline is the last five: two days is plenty.
      retentionTime = "2d";
      scrapeConfigs = [
        {
          job_name = "bluegreen-arms";
          metrics_path = "/metrics";
          scrape_interval = "1s";
          scrape_timeout = "1s";
          static_configs = map (c: {
            targets = nodesOf c;
            labels = { arm = c; };
          }) colors;
        }
      ];
    };
  };
}
