# The maintenance queue (services.bluegreen-edge.maintenance.queue): nginx hands the writes it
# keeps to the queue service on loopback, which stores them and replays them once writes are
# open again. Its lines in the http block and in the users' location are nginx.nix's.
{ config, lib, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (lib) mkIf;
  inherit (import ./common.nix { inherit lib cfg; }) queueDir keepalive q queueing;

  probeTokenName = "bluegreen-edge/probe.token";
  queueGroup = "${cfg.upstreamPrefix}_queue";
in
{
  config = mkIf cfg.enable {
    services.nginx.upstreams = mkIf queueing {
      ${queueGroup} = {
        servers."127.0.0.1:${toString q.port}" = { };
        extraConfig = keepalive;
      };
    };

    services.nginx.virtualHosts.bluegreen-edge.locations = {
      "@bluegreen_queue" = mkIf queueing {
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
      "@bluegreen_unqueued" = mkIf queueing {
        extraConfig = ''
          add_header Retry-After $bluegreen_retry_after always;
          return 503 $bluegreen_maintenance_body;
        '';
      };
    };

    environment.etc.${probeTokenName} = mkIf (queueing && cfg.probeToken != "") {
      text = cfg.probeToken;
      mode = "0400";
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
  };
}
