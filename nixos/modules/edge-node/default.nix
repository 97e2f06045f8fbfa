# The edge of a bluegreen deployment: nginx in front of both arms, the traffic switch.
#
# nginx.conf holds only what is structural: one upstream group per colour,
# `<upstreamPrefix>_<colour>` (the colour's nodes, then the other colour's as `backup`, which
# nginx uses only when every node of the colour has failed), the listen port, and the features
# that are on (edge cache, shadow traffic, rate and connection limits). Which colour a request
# goes to is decided per request by the njs module bluegreen/nginx_text/switch.js (loaded with
# `services.nginx.additionalModules`), which reads the switch state from
# /etc/bluegreen-edge/switch.json: the pointer, the weights, the sticky canary, maintenance, the
# arms' versions, the shadow share, whether the limits apply, and the generation. switch.js's
# header documents every field; bluegreen/nginx.py `switch_state` builds the same JSON.
#
# A flip changes options of the switch state only (activeColor, weights, generation). They
# change the file in /etc and not nginx.conf, so `nixos-rebuild switch` does not reload nginx:
# NixOS swaps /etc atomically (one rename of the /etc/static link), and the next request reads
# the new state. A reload would close kept-alive connections, and a client that sends on one as
# it closes gets a reset; a new file in /etc closes nothing. Only a structural change (nodes,
# port, a feature switched on or off) changes nginx.conf, and nginx reloads gracefully. The state
# file of NixOS has no `writtenAt`: it is a store path, written once.
#
# `pulumi up -s live` renders /etc/nixos/bluegreen/<app>-edge.nix, which imports this module and
# sets its options from the pointer `bluegreen:activeColor` and the edge settings;
# nixos/nodes/edge.nix is a hand-written example.
#
# The module is split as nixpkgs splits its nginx module: this file imports the options, one
# file per group (<group>-options.nix; options.nix holds the ungrouped ones), and the
# configuration by what it makes (nginx.nix, switch-state.nix, queue.nix, prometheus.nix); it
# checks the options together and opens the firewall. common.nix holds what they share.
{ config, lib, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (import ./common.nix { inherit lib cfg; }) colors shadowLocation;

  addresses = map (s: s.address) cfg.servers;
  weightOf = c: cfg.weights.${c} or 0;
  weightNames = builtins.attrNames cfg.weights;
in
{
  imports = [
    ./options.nix
    ./cache-options.nix
    ./shadow-options.nix
    ./limits-options.nix
    ./prometheus-options.nix
    ./lease-options.nix
    ./maintenance-options.nix
    ./queue-options.nix
    ./nginx.nix
    ./switch-state.nix
    ./queue.nix
    ./prometheus.nix
  ];

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.any (c: weightOf c > 0) colors;
        message = ''
          services.bluegreen-edge.weights: no arm of services.bluegreen-edge.servers has a
          weight above 0, so nothing would take traffic. Give
          services.bluegreen-edge.activeColor (${cfg.activeColor}) weight 100.
        '';
      }
      {
        assertion = weightOf cfg.activeColor > 0 && lib.elem cfg.activeColor colors;
        message = ''
          services.bluegreen-edge.activeColor is ${cfg.activeColor}, but ${cfg.activeColor} has
          no weight above 0 in services.bluegreen-edge.weights, or no server in
          services.bluegreen-edge.servers.
        '';
      }
      {
        assertion = lib.all (c: lib.elem c colors) weightNames;
        message = ''
          services.bluegreen-edge.weights: one weight per arm of services.bluegreen-edge.servers
          (${lib.concatStringsSep ", " colors}), got one for
          ${lib.concatStringsSep ", " (lib.filter (c: !(lib.elem c colors)) weightNames)}.
        '';
      }
      {
        assertion = lib.foldl' (sum: c: sum + cfg.weights.${c}) 0 weightNames == 100;
        message = ''
          services.bluegreen-edge.weights: the arms' weights must add up to 100, got
          ${lib.concatMapStringsSep " + " (c: "${c} ${toString cfg.weights.${c}}") weightNames}.
        '';
      }
      {
        assertion = lib.length (lib.unique addresses) == lib.length addresses;
        message = ''
          services.bluegreen-edge.servers lists an address more than once; a node belongs to
          one arm only.
        '';
      }
      {
        assertion = !(lib.hasPrefix "/_bluegreen/" cfg.healthPath);
        message = ''
          services.bluegreen-edge.healthPath must not be under /_bluegreen/, which the edge
          serves itself (the lease and the status), got ${cfg.healthPath}.
        '';
      }
      {
        assertion = cfg.maintenance.window.start == null || cfg.maintenance.window.end == null
          || cfg.maintenance.window.end > cfg.maintenance.window.start;
        message = ''
          services.bluegreen-edge.maintenance.window.end must be after
          services.bluegreen-edge.maintenance.window.start.
        '';
      }
      {
        assertion = cfg.healthPath != "/" && cfg.healthPath != shadowLocation;
        message = ''
          services.bluegreen-edge.healthPath must not be "/" (proxied to the arms) or
          ${shadowLocation} (shadow traffic).
        '';
      }
    ];

    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall cfg.port
      ++ lib.optional (cfg.prometheus.enable && cfg.prometheus.openFirewall) cfg.prometheus.port;
  };
}
