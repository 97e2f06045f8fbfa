# nginx.conf: one upstream group per colour (and per colour for shadow traffic), the njs switch
# in the http block, and the edge's virtual host: the location every user's request takes, the
# edge's own documents and its health path. The maintenance queue's intake locations are
# queue.nix's; the lines of the http block and of the location that belong to a feature (limits,
# cache, shadow, queue) are here, since nginx reads them in this order.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (lib) mkIf;
  inherit (import ./common.nix { inherit lib cfg; })
    stateFile leaseDir shadowLocation cacheDir colors nodesOf keepalive shadowing q queueing;

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
  # The 413 of a kept write over the cap (`render_local` in bluegreen/nginx_conf/ has the same).
  tooLarge = builtins.toJSON {
    error = "too large";
    message = "a write kept during maintenance has at most ${toString q.maxBodyKb} KiB";
  };
  proxy = builtins.readFile ../../../bluegreen/nginx_text/proxy.conf;

  group = c: "${cfg.upstreamPrefix}_${c}";
  shadowGroup = c: "${cfg.upstreamPrefix}_shadow_${c}";
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
    js_import bluegreen from ${../../../bluegreen/nginx_text/switch.js};
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
  + builtins.readFile ../../../bluegreen/nginx_text/sticky-maps.conf
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

  # A document the edge serves itself from the switch state (switch.js), read-only.
  readOnly = fn: type: ''
    default_type ${type};
    if ($request_method !~ ^(GET|HEAD)$) { return 405; }
    add_header Cache-Control no-store always;
    js_content bluegreen.${fn};
  '';
in
{
  config = mkIf cfg.enable {
    services.nginx = {
      enable = true;
      # A structural change reloads nginx rather than restarting it: no connection is refused,
      # requests in flight finish where they are. A flip does not even reload (see default.nix).
      enableReload = true;
      # switch.js runs in nginx's own JavaScript (njs), built into the nginx package.
      additionalModules = [ pkgs.nginxModules.njs ];

      upstreams = upstreams // lib.optionalAttrs shadowing shadowUpstreams;

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
  };
}
