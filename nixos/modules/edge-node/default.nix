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
# sets the options below from the pointer `bluegreen:activeColor` and the edge settings;
# nixos/nodes/edge.nix is a hand-written example.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (lib) mkEnableOption mkIf mkOption types;

  # Values that are rendered into nginx.conf: strict alphabets keep `;`, `{`, `}`, quotes and
  # spaces out, so no value can end a directive or open a block.
  hostPort = types.strMatching "(\\[[0-9A-Fa-f:.]+]|[A-Za-z0-9][A-Za-z0-9.-]{0,252}):[0-9]{1,5}";
  address = types.strMatching "[0-9A-Fa-f:.]+|[A-Za-z0-9][A-Za-z0-9.-]{0,252}";
  urlPath = types.strMatching "/[A-Za-z0-9._~/-]{0,127}";
  version = types.strMatching "[A-Za-z0-9][A-Za-z0-9._+-]{0,63}";
  fingerprint = types.strMatching "[0-9a-f]{0,64}";
  color = types.enum [ "blue" "green" ];

  colors = lib.unique (map (s: s.color) cfg.servers);
  addresses = map (s: s.address) cfg.servers;
  nodesOf = c: map (s: s.address) (lib.filter (s: s.color == c) cfg.servers);
  weightOf = c: cfg.weights.${c} or 0;
  weightNames = builtins.attrNames cfg.weights;

  # The switch state, read by switch.js per request.
  stateName = "bluegreen-edge/switch.json";
  probeTokenName = "bluegreen-edge/probe.token";
  stateFile = "/etc/${stateName}";
  # When this host began serving the lease's fence, by its own clock: the mtime of
  # `lease-<fence>` here (`LEASE_STAMP` in bluegreen/nginx.py), which switch.js serves as the
  # lease's `since`. The state in /etc is a store path (mtime 1), and the operator's clock is
  # read before the copy and the rebuild, and may be skewed: either would eat the handover.
  leaseDir = "/var/lib/bluegreen-edge/lease";
  leaseStamp = "lease-${toString cfg.lease.fence}";
  # The requests maintenance refuses and shadow traffic leaves alone (bluegreen/switch.py).
  writeMethods = [ "POST" "PUT" "PATCH" "DELETE" ];
  # The variables switch.js sets, by the function that computes each (`JS_VARIABLES` in
  # bluegreen/nginx.py); nginx evaluates one only when a directive uses it.
  jsVariables = {
    bluegreen_color = "color";
    bluegreen_version = "version";
    bluegreen_edge = "edge";
    bluegreen_generation = "generation";
    bluegreen_refuse = "refuse";
    bluegreen_maintenance_body = "maintenanceBody";
    bluegreen_banner = "banner";
    bluegreen_limit = "limitKey";
    bluegreen_retry_after = "retryAfter";
    bluegreen_sticky_cookie = "setCookie";
    bluegreen_shadow = "shadow";
    bluegreen_no_cache = "noCache";
    bluegreen_health = "health";
    bluegreen_probe = "probe";
    bluegreen_replay = "replay";
    bluegreen_cache_bypass = "cacheBypass";
  };
  shadowLocation = "/_bluegreen_shadow";
  cacheDir = "/var/cache/nginx/bluegreen";

  shadowing = cfg.shadow.percent > 0;
  limited = cfg.limits.rate > 0 || cfg.limits.connections > 0;
  q = cfg.maintenance.queue;
  queueing = q.paths != [ ];
  queueGroup = "${cfg.upstreamPrefix}_queue";
  queueDir = "/var/lib/bluegreen-edge-queue";
  # The 413 of a kept write over the cap (`render_local` in bluegreen/nginx.py has the same).
  tooLarge = builtins.toJSON {
    error = "too large";
    message = "a write kept during maintenance has at most ${toString q.maxBodyKb} KiB";
  };
  proxy = builtins.readFile ../../bluegreen/nginx_text/proxy.conf;

  group = c: "${cfg.upstreamPrefix}_${c}";
  shadowGroup = c: "${cfg.upstreamPrefix}_shadow_${c}";
  keepalive = "keepalive ${toString cfg.keepalive};";
  serversWith = parameters: nodes: lib.listToAttrs (map (a: lib.nameValuePair a parameters) nodes);

  # One group per colour (`groups` in bluegreen/nginx.py): the colour's nodes take its requests,
  # the other colour's stand by. A flip changes nothing here.
  upstreams = lib.listToAttrs (map
    (c: lib.nameValuePair (group c) {
      servers = serversWith cfg.serverParameters (nodesOf c)
        // serversWith { backup = true; } (lib.concatMap nodesOf (lib.filter (o: o != c) colors));
      extraConfig = keepalive;
    })
    colors);
  # Shadow traffic goes to the idle colour's own nodes only: no backup, its answers are dropped.
  shadowUpstreams = lib.listToAttrs (map
    (c: lib.nameValuePair (shadowGroup c) {
      servers = serversWith cfg.serverParameters (nodesOf c);
      extraConfig = keepalive;
    })
    colors);

  safeReload = lib.versionAtLeast (config.services.nginx.package.version or "0") "1.27.4";

  httpConfig = ''
    js_import bluegreen from ${../../bluegreen/nginx_text/switch.js};
  ''
  # nginx 1.27.4 and later (NixOS ships them): a reload, which only a structural change needs,
  # closes a kept-alive connection only after one more response on it, so no client is reset.
  + lib.optionalString safeReload ''
    keepalive_min_timeout 1s;
  ''
  + lib.concatStrings
    (lib.mapAttrsToList (var: fn: "js_set \$${var} bluegreen.${fn};\n") jsVariables)
  + ''
    map $pid $bluegreen_state { default "${stateFile}"; }
    map $pid $bluegreen_lease_dir { default "${leaseDir}"; }
    map $pid $bluegreen_conf { default "${cfg.configGeneration}"; }
  ''
  # Sticky canary: a client keeps its id in its bluegreen_client cookie; new clients get one.
  + builtins.readFile ../../bluegreen/nginx_text/sticky-maps.conf
  + lib.optionalString (cfg.limits.rate > 0) ''
    limit_req_zone $bluegreen_limit zone=bluegreen_rate:1m rate=${toString cfg.limits.rate}r/s;
    limit_req_status 429;
  ''
  + lib.optionalString (cfg.limits.connections > 0) ''
    limit_conn_zone $bluegreen_limit zone=bluegreen_conn:1m;
    limit_conn_status 503;
  ''
  + lib.optionalString cfg.cache.enable ''
    proxy_cache_path ${cacheDir} levels=1:2 keys_zone=bluegreen_cache:10m max_size=${toString cfg.cache.maxSize}m inactive=60m use_temp_path=off;
  ''
  # The queue's own per-client limits (see @bluegreen_queue).
  + lib.optionalString queueing ''
    limit_req_zone $binary_remote_addr zone=bluegreen_queue_rate:1m rate=${toString q.rate}r/s;
    limit_conn_zone $binary_remote_addr zone=bluegreen_queue_conn:1m;
  '';

  # The location every user's request takes; what it refuses and where it goes is switch.js's.
  location = ''
    default_type application/json;
    if ($bluegreen_color = "") { return 503; }
  ''
  # Maintenance with a queue: a keyed write to a queued path is kept (202, a receipt) by the
  # queue service instead of being refused.
  + lib.optionalString queueing ''
    error_page 418 = @bluegreen_queue;
    recursive_error_pages on;
    if ($bluegreen_refuse = queue) { return 418; }
    if ($bluegreen_refuse = 413) { return 413 '${tooLarge}'; }
  ''
  + ''
    # Maintenance (read-only) mode: other writes are refused before any arm.
    if ($bluegreen_refuse = 503) { return 503 $bluegreen_maintenance_body; }
    if ($bluegreen_refuse = 423) { return 423 $bluegreen_maintenance_body; }
  ''
  # nginx refuses `burst=0`: no burst is said by leaving it out.
  + lib.optionalString (cfg.limits.rate > 0) ''
    limit_req zone=bluegreen_rate${lib.optionalString (cfg.limits.burst > 0) " burst=${toString cfg.limits.burst}"} nodelay;
  ''
  + lib.optionalString (cfg.limits.connections > 0) ''
    limit_conn bluegreen_conn ${toString cfg.limits.connections};
  ''
  + lib.optionalString shadowing ''
    mirror ${shadowLocation};
  ''
  + lib.optionalString cfg.cache.enable ''
    # Keyed by the colour and version that answer: a flip or a rollback never serves
    # the other arm's content. Only what the arm marks cacheable is kept.
    proxy_cache bluegreen_cache;
    proxy_cache_key "$bluegreen_color $bluegreen_version $scheme://$host$request_uri";
    proxy_cache_bypass $bluegreen_cache_bypass;
    proxy_no_cache $bluegreen_no_cache;
    add_header X-Bluegreen-Cache $upstream_cache_status always;
  ''
  + proxy
  + ''
    add_header X-Bluegreen-Edge $bluegreen_edge always;
    add_header X-Bluegreen-Edge-Generation $bluegreen_generation always;
    add_header X-Bluegreen-Banner $bluegreen_banner always;
    add_header Retry-After $bluegreen_retry_after always;
    add_header Set-Cookie $bluegreen_sticky_cookie;
  '';

  # What moves traffic (`switch_state` in bluegreen/nginx.py has the same shape).
  state = {
    conf = cfg.configGeneration;
    active = cfg.activeColor;
    weights = cfg.weights;
    sticky = cfg.stickyCanary;
    versions = cfg.versions;
    writes = writeMethods;
    maintenance =
      if cfg.maintenance.enable then {
        inherit (cfg.maintenance) status retryAfter banner body;
        queue = if queueing then { inherit (q) paths; maxBody = q.maxBodyKb * 1024; } else null;
      } else null;
    window =
      if cfg.maintenance.window.start != null || cfg.maintenance.window.end != null
      then { inherit (cfg.maintenance.window) start end; } else null;
    lease = { color = cfg.activeColor; inherit (cfg.lease) fence since handover; };
    shadow = if shadowing then { inherit (cfg.shadow) percent writes; } else null;
    limits = if limited then { inherit (cfg.limits) retryAfter until; } else null;
    warm = null;
    probe = cfg.probeToken;
    generation = cfg.generation;
  };

  # A document the edge serves itself from the switch state (switch.js), read-only.
  readOnly = fn: type: ''
    default_type ${type};
    if ($request_method !~ ^(GET|HEAD)$) { return 405; }
    add_header Cache-Control no-store always;
    js_content bluegreen.${fn};
  '';

  # Said in the description of every option that is part of the switch state.
  stateOnly = ''

    Part of the switch state ({file}`${stateFile}`): changing it does not reload nginx.
  '';
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

    cache = {
      enable = mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = ''
          Cache the GET answers an arm marks cacheable (`Cache-Control: max-age`) at the edge,
          in {file}`${cacheDir}`, keyed by the colour and the version that served them
          ({option}`services.bluegreen-edge.versions`), so that a flip or a rollback never
          serves the other arm's content. bluegreen's probes bypass it.
        '';
      };
      maxSize = mkOption {
        type = types.ints.positive;
        default = 256;
        description = "Disk the edge cache may use, in MiB (bluegreen:cacheMaxSizeMb).";
      };
    };

    shadow = {
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

    limits = {
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

    lease = {
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

    maintenance = {
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
      queue = {
        paths = mkOption {
          type = types.listOf urlPath;
          default = [ ];
          example = [ "/orders" "/cart" ];
          description = ''
            Write path prefixes whose writes carrying an `Idempotency-Key` are kept during
            maintenance by the queue service (answered 202 with a receipt) and replayed to the
            active arm, in arrival order, when writes are open again: each sent at least once,
            applied once by the arm's `Idempotency-Key` dedupe. Empty: none.
          '';
        };
        maxBodyKb = mkOption {
          type = types.ints.between 1 10240;
          default = 64;
          description = "Largest body of a kept write, in KiB; larger ones are answered 413.";
        };
        soakSeconds = mkOption {
          type = types.ints.between 0 3600;
          default = 5;
          description = "How long writes must stay open before the kept ones are replayed.";
        };
        maxPending = mkOption {
          type = types.ints.between 1 10000000;
          default = 10000;
          description = ''
            Most writes the queue keeps pending (over every edge node sharing its store); past
            it a kept write is answered 503 with `Retry-After`, never 202.
          '';
        };
        maxPendingMb = mkOption {
          type = types.ints.between 1 1000000;
          default = 256;
          description = "Most MiB of pending writes (bodies and headers); past it 503.";
        };
        maxPerClient = mkOption {
          type = types.ints.between 1 10000000;
          default = 2500;
          description = ''
            Most pending writes one client (its `Authorization`, else its `Cookie`, else its
            address) may have, so one client cannot fill the queue for the others; past it 503.
          '';
        };
        minFreeMb = mkOption {
          type = types.ints.between 0 1000000;
          default = 256;
          description = ''
            SQLite store: MiB the disk under {file}`${queueDir}` keeps free; a write that would
            leave less is answered 503.
          '';
        };
        retryMinutes = mkOption {
          type = types.ints.between 1 10080;
          default = 10;
          description = ''
            How long a kept write is retried through transient failures before it becomes a
            dead letter.
          '';
        };
        rate = mkOption {
          type = types.ints.between 1 10000;
          default = 5;
          description = ''
            Kept writes per second one client (by address) may send; more are answered 429
            with `Retry-After`. Kept writes are diverted before
            {option}`services.bluegreen-edge.limits.rate` applies, so this one always does.
          '';
        };
        burst = mkOption {
          type = types.ints.between 0 100000;
          default = 10;
          description = ''
            Kept writes above {option}`services.bluegreen-edge.maintenance.queue.rate` one
            client may send at once.
          '';
        };
        connections = mkOption {
          type = types.ints.between 1 100000;
          default = 4;
          description = ''
            Connections one client may have open to the queue's intake at once; more are
            answered 429 with `Retry-After`.
          '';
        };
        port = mkOption {
          type = types.port;
          default = 18095;
          description = "Loopback port of the queue service, which nginx passes kept writes to.";
        };
        dsnFile = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "/run/secrets/bluegreen-queue-dsn";
          description = ''
            A file on the node holding the `postgresql://` DSN of a store shared by several edge
            nodes, handed to the service as a systemd credential; null: SQLite in
            {file}`${queueDir}`. Never put the DSN itself in the configuration: it would land
            in the Nix store.
          '';
        };
        keyFile = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = ''
            The key that seals credentials in kept writes' headers (32 bytes); null: one the
            service creates in {file}`${queueDir}`. Edge nodes that share a PostgreSQL store need
            the same key: provision it as a file.
          '';
        };
        package = mkOption {
          type = types.package;
          default = pkgs.callPackage ../pkgs/bluegreen-tools.nix { };
          defaultText = lib.literalExpression "pkgs.callPackage ../pkgs/bluegreen-tools.nix { }";
          description = "The package whose `bluegreen-queue` runs the queue service.";
        };
      };

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
    };
  };

  config = mkIf cfg.enable {
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

    services.nginx = {
      enable = true;
      # A structural change reloads nginx rather than restarting it: no connection is refused,
      # requests in flight finish where they are. A flip does not even reload (see the top).
      enableReload = true;
      # switch.js runs in nginx's own JavaScript (njs), built into the nginx package.
      additionalModules = [ pkgs.nginxModules.njs ];

      upstreams = upstreams // lib.optionalAttrs shadowing shadowUpstreams
        // lib.optionalAttrs queueing {
          ${queueGroup} = {
            servers."127.0.0.1:${toString q.port}" = { };
            extraConfig = keepalive;
          };
        };

      commonHttpConfig = httpConfig;

      virtualHosts.bluegreen-edge = {
        default = true;
        listen = [ { addr = cfg.listenAddress; port = cfg.port; } ];

        locations."/" = {
          proxyPass = "http://${cfg.upstreamPrefix}_$bluegreen_color";
          extraConfig = location;
        };

        # Shadow traffic: a share of live requests, copied to the idle arm; its answers are
        # discarded, and the request is never held up by it.
        locations."= ${shadowLocation}" = mkIf shadowing {
          proxyPass = "http://${cfg.upstreamPrefix}_shadow_$bluegreen_shadow$request_uri";
          extraConfig = ''
            internal;
            if ($bluegreen_shadow = "") { return 204; }
          '' + proxy + ''
            proxy_set_header X-Bluegreen-Shadow 1;
          '';
        };

        # The edge's own documents, read-only: nothing the edge serves changes state.
        locations."= /_bluegreen/lease" = { extraConfig = readOnly "lease" "application/json"; };
        locations."= /_bluegreen/status" = { extraConfig = readOnly "status" "application/json"; };
        locations."= /_bluegreen/status.html" = {
          extraConfig = readOnly "statusPage" "\"text/html; charset=utf-8\"";
        };
        locations."^~ /_bluegreen/" = { extraConfig = "return 404;"; };
        # An arm's own documents (its journal of writes) are for operators on the arms'
        # network, not for the public.
        locations."^~ /_arm/" = { extraConfig = "return 404;"; };

        locations."@bluegreen_queue" = mkIf queueing {
          proxyPass = "http://${queueGroup}";
          extraConfig = ''
            # The queue service caps bodies too: switch.js refuses by Content-Length, and a
            # chunked body is counted by the service.
            client_max_body_size ${toString q.maxBodyKb}k;
            # Diverted in the rewrite phase, before the edge-wide limits (which may be off):
            # each client's own rate and connections cap what it can make the queue keep.
            limit_req zone=bluegreen_queue_rate${lib.optionalString (q.burst > 0) " burst=${toString q.burst}"} nodelay;
            limit_req_status 429;
            limit_conn bluegreen_queue_conn ${toString q.connections};
            limit_conn_status 429;
            proxy_http_version 1.1;
            proxy_headers_hash_bucket_size 128;
            proxy_set_header Connection "";
            # Of the X-Bluegreen-* request headers (REQUEST_HEADERS in bluegreen/probe.py),
            # the queue service gets the edge's Retry-After only.
            proxy_set_header X-Bluegreen-Probe "";
            proxy_set_header X-Bluegreen-Warm "";
            proxy_set_header X-Bluegreen-Replay "";
            proxy_set_header X-Bluegreen-Shadow "";
            proxy_set_header X-Bluegreen-Retry-After $bluegreen_retry_after;
            proxy_set_header X-Bluegreen-Receipt "";
            proxy_set_header X-Bluegreen-Client $remote_addr;
            # One Retry-After, the edge's: the service's own would repeat it.
            proxy_hide_header Retry-After;
            add_header Retry-After $bluegreen_retry_after always;
            add_header X-Bluegreen-Banner $bluegreen_banner always;
            # The queue service is down: the write is refused, as without a queue, not lost.
            error_page 502 504 = @bluegreen_unqueued;
          '';
        };
        locations."@bluegreen_unqueued" = mkIf queueing {
          extraConfig = ''
            add_header Retry-After $bluegreen_retry_after always;
            return 503 $bluegreen_maintenance_body;
          '';
        };

        locations."= ${cfg.healthPath}" = {
          extraConfig = ''
            access_log off;
            default_type application/json;
            add_header X-Bluegreen-Edge $bluegreen_edge always;
            add_header X-Bluegreen-Edge-Generation $bluegreen_generation always;
            return 200 $bluegreen_health;
          '';
        };
      };
    };

    # The switch state: a flip changes this file and nothing nginx reads at start.
    environment.etc.${stateName}.text = builtins.toJSON state;
    environment.etc.${probeTokenName} = mkIf (queueing && cfg.probeToken != "") {
      text = cfg.probeToken;
      mode = "0400";
    };

    # Stamp the lease's fence once the new /etc is in place (after "etc"), so the handover runs
    # from when this host serves it, by this host's clock; a fence it already serves keeps its
    # stamp (a weight or maintenance change, a reboot). Until the stamp exists switch.js counts
    # the handover from the request. Other fences' stamps go: one served again (a manual
    # rollback) starts its handover afresh.
    system.activationScripts.bluegreen-edge-lease = {
      deps = [ "etc" ];
      text = ''
        mkdir -p -m 0755 ${leaseDir}
        if [ ! -e ${leaseDir}/${leaseStamp} ]; then
          touch ${leaseDir}/${leaseStamp}
          for stamp in ${leaseDir}/lease-*; do
            [ "$stamp" = ${leaseDir}/${leaseStamp} ] || rm -f "$stamp"
          done
        fi
      '';
    };

    # The maintenance queue's service: intake from nginx on loopback, its store and key
    # readable by its own user only.
    systemd.services.bluegreen-edge-queue = mkIf queueing {
      description = "bluegreen maintenance queue: write intents kept during maintenance";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" "nginx.service" ];
      serviceConfig = {
        ExecStart = lib.concatStringsSep " " ([
          "${q.package}/bin/bluegreen-queue"
          "--listen=127.0.0.1:${toString q.port}"
          (if q.dsnFile == null then "--store=sqlite://${queueDir}/intents.sqlite3"
           else "--store-file=%d/dsn")
          "--key-file=${if q.keyFile == null then "${queueDir}/intents.key" else "%d/key"}"
          "--edge=http://127.0.0.1:${toString cfg.port}"
          "--max-body-kb=${toString q.maxBodyKb}"
          "--soak=${toString q.soakSeconds}"
          "--max-pending=${toString q.maxPending}"
          "--max-pending-mb=${toString q.maxPendingMb}"
          "--max-per-client=${toString q.maxPerClient}"
          "--min-free-mb=${toString q.minFreeMb}"
          "--retry-horizon=${toString (q.retryMinutes * 60)}"
        ] ++ lib.optional (cfg.probeToken != "") "--probe-token-file=%d/probe");
        # The edge's probe token, which the service's polls and replays prove themselves with:
        # a root-only file, handed to the service's dynamic user as a credential.
        LoadCredential = lib.optional (cfg.probeToken != "") "probe:/etc/${probeTokenName}"
          ++ lib.optional (q.dsnFile != null) "dsn:${q.dsnFile}"
          ++ lib.optional (q.keyFile != null) "key:${q.keyFile}";
        DynamicUser = true;
        StateDirectory = "bluegreen-edge-queue";
        StateDirectoryMode = "0700";
        UMask = "0077";
        Restart = "always";
        RestartSec = "1s";
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
          static_configs = map (c: {
            targets = nodesOf c;
            labels = { arm = c; };
          }) colors;
        }
      ];
    };

    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall cfg.port
      ++ lib.optional (cfg.prometheus.enable && cfg.prometheus.openFirewall) cfg.prometheus.port;
  };
}
