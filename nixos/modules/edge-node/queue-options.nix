# services.bluegreen-edge.maintenance.queue: the writes kept during maintenance by the queue
# service (queue.nix) and replayed to the active arm once writes are open again.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (lib) mkOption types;
  inherit (import ./common.nix { inherit lib cfg; }) urlPath queueDir;
in
{
  options.services.bluegreen-edge.maintenance.queue = {
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
      default = pkgs.callPackage ../../pkgs/bluegreen-tools.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ../../pkgs/bluegreen-tools.nix { }";
      description = "The package whose `bluegreen-queue` runs the queue service.";
    };
  };
}
