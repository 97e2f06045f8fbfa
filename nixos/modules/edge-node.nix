# The edge of a bluegreen deployment: nginx in front of both arms, the traffic switch.
#
# The arm that is live gets its weight; the idle arm stays in the upstream as `backup`, so nginx
# falls back to it when every live node fails. A flip changes two weights and nothing else, and
# nginx reloads gracefully: requests in flight finish on the arm that took them.
#
# `pulumi up -s live` renders /etc/nixos/bluegreen/<app>-edge.nix, which imports this module and
# sets the options below from the pointer `bluegreen:activeColor`; nixos/nodes/edge.nix is a
# hand-written example.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (lib) mkEnableOption mkIf mkOption types;

  # Values that are rendered into nginx.conf: strict alphabets keep `;`, `{`, `}`, quotes and
  # spaces out, so no value can end a directive or open a block.
  hostPort = types.strMatching "(\\[[0-9A-Fa-f:.]+]|[A-Za-z0-9][A-Za-z0-9.-]{0,252}):[0-9]{1,5}";
  address = types.strMatching "[0-9A-Fa-f:.]+|[A-Za-z0-9][A-Za-z0-9.-]{0,252}";
  urlPath = types.strMatching "/[A-Za-z0-9._~/-]{0,127}";

  colors = lib.unique (map (s: s.color) cfg.servers);
  weightOf = color: (lib.findFirst (s: s.color == color) { weight = 0; } cfg.servers).weight;
  addresses = map (s: s.address) cfg.servers;

  # nginx parameters of one upstream server: the live arm's weight, `backup` for the idle arm.
  upstreamServer = s:
    if s.weight > 0 then { inherit (s) weight; } // cfg.serverParameters else { backup = true; };

  # A canary split with both arms weighted: the case in which stickiness applies.
  splitting = lib.length (lib.filter (c: weightOf c > 0) colors) > 1;
  sticky = cfg.stickyCanary && splitting;
  banner = lib.optionalString (cfg.maintenance.enable && cfg.maintenance.banner != "") ''
    add_header X-Bluegreen-Banner "${cfg.maintenance.banner}" always;
  '';

  healthBody = builtins.toJSON {
    status = "ok";
    activeColor = cfg.activeColor;
    readOnly = cfg.maintenance.enable;
  };
in
{
  options.services.bluegreen-edge = {
    enable = mkEnableOption "the bluegreen edge: nginx as the blue/green traffic switch";

    activeColor = mkOption {
      type = types.enum [ "blue" "green" ];
      example = "green";
      description = ''
        The pointer: the arm that takes the traffic. It must be one of the colours in
        {option}`services.bluegreen-edge.servers` with a weight above 0.
      '';
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
            type = types.enum [ "blue" "green" ];
            description = "The arm the node belongs to.";
          };
          weight = mkOption {
            type = types.ints.between 0 100;
            description = ''
              The arm's share of traffic in percent; 0 makes the node a `backup` server, which
              nginx only uses when every weighted server has failed.
            '';
          };
        };
      });
      example = lib.literalExpression ''
        [
          { address = "10.0.0.10:8000"; color = "blue"; weight = 100; }
          { address = "10.0.0.11:8000"; color = "green"; weight = 0; }
        ]
      '';
      description = ''
        Every node of both arms with its arm's weight, in the order bluegreen renders them
        (`servers_for` in bluegreen/nginx.py), so that a flip changes weights only.
      '';
    };

    serverParameters = mkOption {
      type = types.attrsOf (types.oneOf [ types.int types.str ]);
      default = { max_fails = 1; fail_timeout = "2s"; };
      description = ''
        nginx `server` parameters of every server that takes traffic. The default is what
        bluegreen's own renderer uses: a node that fails once is left alone for 2 s, so an arm
        restarting during a flip costs one retry rather than failed requests.
      '';
    };

    stickyCanary = mkOption {
      type = types.bool;
      default = false;
      description = ''
        During a canary step (both arms weighted), keep each client on one arm: the edge gives
        every new client a `bluegreen_client` cookie and hashes the upstream on it, so nobody
        bounces between versions. No effect while one arm takes all traffic.
      '';
    };

    keepalive = mkOption {
      type = types.ints.positive;
      default = 32;
      description = "Idle keep-alive connections nginx keeps open to the arms.";
    };

    upstreamName = mkOption {
      type = types.strMatching "[A-Za-z_][A-Za-z0-9_]{0,63}";
      default = "bluegreen";
      example = "bluegreen_shop";
      description = "Name of the nginx upstream that holds both arms.";
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
        Path the edge answers itself (not proxied) with its state as JSON, for load balancers
        and monitoring in front of the edge.
      '';
    };

    generation = mkOption {
      type = types.strMatching "[0-9a-f]{0,64}";
      default = "";
      example = "3f2a9c1b7d4e";
      description = ''
        Fingerprint of this configuration, sent as `X-Bluegreen-Edge-Generation` on every
        proxied response: `pulumi up -s live` probes for it to confirm that the new
        configuration serves, since a reload can fail while the switch itself succeeds.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open {option}`services.bluegreen-edge.port` in the firewall.";
    };

    prometheus = {
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

    maintenance = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Read-only mode: `POST`, `PUT`, `PATCH` and `DELETE` are answered by the edge with
          {option}`services.bluegreen-edge.maintenance.status`, a `Retry-After` header and a
          stable JSON body ({option}`services.bluegreen-edge.maintenance.body`); reads keep
          being served by the arms.
        '';
      };
      status = mkOption {
        type = types.enum [ 503 423 ];
        default = 503;
        description = ''
          Status of refused writes: 503 (Service Unavailable) or 423 (Locked).
        '';
      };
      retryAfter = mkOption {
        type = types.ints.between 1 86400;
        default = 30;
        description = "Seconds sent in `Retry-After` with every refused write.";
      };
      banner = mkOption {
        type = types.strMatching "[A-Za-z0-9 .,:!?()'/_-]{0,200}";
        default = "";
        example = "Read-only until 14:00 UTC for a database upgrade.";
        description = "A message every response carries in `X-Bluegreen-Banner` while read-only.";
      };
      body = mkOption {
        # Rendered inside single quotes, where nginx would expand `$` and end at `'`.
        type = types.strMatching "[^'$\\\n]{1,1000}";
        default = builtins.toJSON {
          error = "maintenance";
          status = cfg.maintenance.status;
          retryAfter = cfg.maintenance.retryAfter;
          message = "The service is read-only for maintenance; retry later.";
        };
        defaultText = lib.literalMD "the JSON body the local platform sends (`maintenance_error_body` in bluegreen/nginx.py)";
        description = ''
          The body of every refused write: a stable, machine-readable JSON error that clients
          can act on.
        '';
      };
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.any (s: s.weight > 0) cfg.servers;
        message = ''
          services.bluegreen-edge.servers: no server has a weight above 0 (every arm is backup),
          so nothing would take traffic. Give the servers of services.bluegreen-edge.activeColor
          (${cfg.activeColor}) weight 100.
        '';
      }
      {
        assertion = weightOf cfg.activeColor > 0;
        message = ''
          services.bluegreen-edge.activeColor is ${cfg.activeColor}, but no ${cfg.activeColor}
          server in services.bluegreen-edge.servers has a weight above 0.
        '';
      }
      {
        assertion = lib.all (s: s.weight == weightOf s.color) cfg.servers;
        message = ''
          services.bluegreen-edge.servers: the nodes of one arm must share the arm's weight.
        '';
      }
      {
        assertion = lib.foldl' (sum: c: sum + weightOf c) 0 colors == 100;
        message = ''
          services.bluegreen-edge.servers: the arms' weights must add up to 100, got
          ${lib.concatMapStringsSep " + " (c: "${c} ${toString (weightOf c)}") colors}.
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
        assertion = cfg.healthPath != "/";
        message = ''
          services.bluegreen-edge.healthPath must not be "/": that path is proxied to the arms.
        '';
      }
    ];

    services.nginx = {
      enable = true;
      # A flip reloads nginx rather than restarting it: no connection is refused while the
      # switch moves, and requests in flight finish on the arm that took them.
      enableReload = true;

      upstreams.${cfg.upstreamName} = {
        servers = lib.listToAttrs
          (map (s: lib.nameValuePair s.address (upstreamServer s)) cfg.servers);
        # The balancing method must come before keepalive, or nginx ignores it.
        extraConfig = lib.optionalString sticky ''
          hash $bluegreen_client consistent;
        '' + "keepalive ${toString cfg.keepalive};";
      };

      # Sticky canary: a client keeps the id in its bluegreen_client cookie; new clients get one.
      commonHttpConfig = mkIf cfg.stickyCanary (builtins.readFile ./nginx/sticky-maps.conf);

      virtualHosts.bluegreen-edge = {
        default = true;
        listen = [ { addr = cfg.listenAddress; port = cfg.port; } ];

        locations."/" = {
          proxyPass = "http://${cfg.upstreamName}";
          extraConfig = builtins.readFile ./nginx/proxy.conf + ''
            add_header X-Bluegreen-Edge "${cfg.activeColor}" always;
            add_header X-Bluegreen-Edge-Generation "${cfg.generation}" always;
          '' + lib.optionalString cfg.stickyCanary ''
            add_header Set-Cookie $bluegreen_set_cookie;
          '' + banner + lib.optionalString cfg.maintenance.enable ''
            # Read-only mode: writes go to the named location below, reads to the arms. A code
            # nginx never produces itself (418) routes them there, so that error_page cannot
            # catch anything else.
            error_page 418 = @bluegreen_maintenance;
            if ($request_method ~ ^(POST|PUT|PATCH|DELETE)$ ) {
              return 418;
            }
          '';
        };

        locations."@bluegreen_maintenance" = mkIf cfg.maintenance.enable {
          extraConfig = ''
            default_type application/json;
            add_header Retry-After ${toString cfg.maintenance.retryAfter} always;
            add_header X-Bluegreen-Edge "${cfg.activeColor}" always;
            add_header X-Bluegreen-Edge-Generation "${cfg.generation}" always;
          '' + banner + ''
            return ${toString cfg.maintenance.status} '${cfg.maintenance.body}';
          '';
        };

        locations."= ${cfg.healthPath}" = {
          extraConfig = ''
            access_log off;
            default_type application/json;
            add_header X-Bluegreen-Edge "${cfg.activeColor}" always;
            return 200 '${healthBody}';
          '';
        };
      };
    };

    # The arms' own metrics for the hold after a flip, scraped where the traffic is switched.
    services.prometheus = mkIf cfg.prometheus.enable {
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
          static_configs = map (color: {
            targets = map (s: s.address) (lib.filter (s: s.color == color) cfg.servers);
            labels = { arm = color; };
          }) colors;
        }
      ];
    };

    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall cfg.port
      ++ lib.optional (cfg.prometheus.enable && cfg.prometheus.openFirewall) cfg.prometheus.port;
  };
}
