# services.bluegreen-edge.prometheus: Prometheus on the edge node, for the hold after a flip
# (prometheus.nix runs it).
{ lib, ... }:

let
  inherit (lib) mkOption types;
in
{
  options.services.bluegreen-edge.prometheus = {
    enable = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Run Prometheus on the edge node ({option}`services.prometheus`), scraping `/metrics`
        on every node of {option}`services.bluegreen-edge.servers` every second, each series
        labelled `arm` with the node's colour. `bluegreen flip` and `bluegreen watch` query it
        for each colour's live traffic in the hold after a flip. bluegreen turns it on unless
        the edge stack's bluegreen:prometheusUrl names a Prometheus of your own.
      '';
    };

    port = mkOption {
      type = types.port;
      default = 19090;
      description = ''
        Port Prometheus listens on (its HTTP API, which the hold queries), bluegreen's
        bluegreen:prometheusPort.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Open {option}`services.bluegreen-edge.prometheus.port` in the firewall, so that the
        machine that runs `bluegreen flip` can query it.
      '';
    };
  };
}
