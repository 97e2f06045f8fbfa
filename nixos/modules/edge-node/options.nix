# services.bluegreen-edge's own options: the nodes, the pointer and the weights, how nginx
# listens and reaches the arms, and the fingerprints of the switch state and of nginx.conf. The
# option groups have a file each (<group>-options.nix); default.nix imports them all.
{ config, lib, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (lib) mkEnableOption mkOption types;
  inherit (import ./common.nix { inherit lib cfg; })
    hostPort address urlPath version fingerprint color stateOnly;
in
{
  options.services.bluegreen-edge = {
    enable = mkEnableOption "the bluegreen edge: nginx as the blue/green traffic switch";

    activeColor = mkOption {
      type = color;
      example = "green";
      description = ''
        The pointer: the arm that takes the traffic. It must have a weight above 0 in
        {option}`services.bluegreen-edge.weights`.
      '' + stateOnly;
    };

    servers = mkOption {
      type = types.listOf (types.submodule {
        options = {
          address = mkOption {
            type = hostPort;
            example = "10.0.0.10:8000";
            description = "`host:port` of one node of an arm.";
          };
          color = mkOption {
            type = color;
            description = "The arm the node belongs to.";
          };
        };
      });
      example = lib.literalExpression ''
        [
          { address = "10.0.0.10:8000"; color = "blue"; }
          { address = "10.0.0.11:8000"; color = "green"; }
        ]
      '';
      description = ''
        Every node of both arms. Each colour gets its own upstream group,
        `<upstreamPrefix>_<colour>`: its own nodes, then the other colour's as `backup`
        (`groups` in bluegreen/nginx.py). A flip does not change them.
      '';
    };

    weights = mkOption {
      type = types.attrsOf (types.ints.between 0 100);
      default = { ${cfg.activeColor} = 100; };
      defaultText = lib.literalExpression "{ \${config.services.bluegreen-edge.activeColor} = 100; }";
      example = { blue = 25; green = 75; };
      description = ''
        Each arm's share of traffic in percent, one weight per colour of
        {option}`services.bluegreen-edge.servers`; they add up to 100, and a colour left out
        gets none. A canary step weights both; the active colour's share goes to it per
        request (by the client's cookie with {option}`services.bluegreen-edge.stickyCanary`).
      '' + stateOnly;
    };

    versions = mkOption {
      type = types.attrsOf version;
      default = { };
      example = { blue = "v1"; green = "v2"; };
      description = ''
        The version each arm serves. The edge cache keys its entries by the colour and this
        version, so a flip or a rollback never serves the other arm's content.
      '' + stateOnly;
    };

    serverParameters = mkOption {
      type = types.attrsOf (types.oneOf [ types.int types.str ]);
      default = { max_fails = 1; fail_timeout = "2s"; };
      description = ''
        nginx `server` parameters of every node in its own colour's group. The default is what
        bluegreen's own renderer uses (`FAILOVER` in bluegreen/nginx.py): a node that fails
        once is left alone for 2 s, so an arm restarting during a flip costs one retry on the
        backup rather than failed requests.
      '';
    };

    stickyCanary = mkOption {
      type = types.bool;
      default = false;
      description = ''
        During a canary step (both arms weighted), keep each client on one arm: the edge gives
        every new client a `bluegreen_client` cookie and puts it in a bucket by it, and raising
        the active colour's weight only ever moves clients onto it. No effect while one arm
        takes all traffic.
      '' + stateOnly;
    };

    keepalive = mkOption {
      type = types.ints.positive;
      default = 32;
      description = "Idle keep-alive connections nginx keeps open to the arms, per group.";
    };

    upstreamPrefix = mkOption {
      type = types.strMatching "[A-Za-z_][A-Za-z0-9_]{0,63}";
      default = "bluegreen";
      example = "bluegreen_shop";
      description = ''
        Prefix of the nginx upstream groups: `<prefix>_blue` and `<prefix>_green`, and
        `<prefix>_shadow_<colour>` while shadow traffic is on.
      '';
    };

    listenAddress = mkOption {
      type = address;
      default = "0.0.0.0";
      description = "Address nginx listens on for users' traffic.";
    };

    port = mkOption {
      type = types.port;
      default = 80;
      example = 18080;
      description = "Port nginx listens on for users' traffic.";
    };

    healthPath = mkOption {
      type = urlPath;
      default = "/healthz/edge";
      description = ''
        Path the edge answers itself (not proxied) with its switch state as JSON (status,
        activeColor, weights, readOnly, generation), for load balancers and monitoring in
        front of the edge.
      '';
    };

    probeToken = mkOption {
      type = types.strMatching "([0-9a-f]{32,128})?";
      default = "";
      description = ''
        The edge's probe token: a request is bluegreen's own (the confirmation of a flip, the
        queue service) only when its `X-Bluegreen-Probe` header is exactly this, and only then
        is it spared the limits, the cache, shadow traffic and the arms' figures; the header
        any other request sends is removed before an arm sees it. bluegreen generates it once
        per edge and keeps it (`probe_token` in bluegreen/nginx.py). It is in the switch state,
        and so in the Nix store: readable by this host's local users, who can reach the arms
        directly anyway. "": no request is bluegreen's own.
      '' + stateOnly;
    };

    generation = mkOption {
      type = fingerprint;
      default = "";
      example = "3f2a9c1b7d4e";
      description = ''
        Fingerprint of the switch state and of the nginx configuration it was written for
        (`switch_state` in bluegreen/nginx.py computes it), sent as
        `X-Bluegreen-Edge-Generation` on every response: `pulumi up -s live` probes for it to
        confirm that the new state serves.
      '' + stateOnly;
    };

    configGeneration = mkOption {
      type = fingerprint;
      default = "";
      example = "9b0e51c7a2d3";
      description = ''
        Fingerprint of the structural configuration (what nginx.conf is made of). nginx.conf
        and the switch state both carry it; while nginx still runs another configuration (a
        reload under way), the edge answers with `conf-<its own>` as its generation, so a
        probe never mistakes it for the new one.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open {option}`services.bluegreen-edge.port` in the firewall.";
    };
  };
}
