# One arm (blue or green) of a bluegreen deployment: the application as a systemd service on
# this node, reachable on its own port so that the edge and the policy pack's smoke test can
# reach this arm directly.
#
# `pulumi up -s blue` renders /etc/nixos/bluegreen/<app>-blue.nix, which imports this module and
# sets the options below; nixos/nodes/blue.nix is a hand-written example.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.bluegreen-arm;
  inherit (lib) mkEnableOption mkIf mkOption types;

  # Everything below ends up on the service's command line: strict alphabets keep quotes,
  # spaces, `;` and `}` out, so no value can add an argument or break the unit file.
  version = types.strMatching "[A-Za-z0-9][A-Za-z0-9._+-]{0,63}";
  urlPath = types.strMatching "/[A-Za-z0-9._~/-]{0,127}";
  address = types.strMatching "[0-9A-Fa-f:.]+|[A-Za-z0-9][A-Za-z0-9.-]{0,252}";
  flag = types.strMatching "--[a-z][a-z-]*=[A-Za-z0-9._+-]*";
  secretPath = types.strMatching "/[A-Za-z0-9._/-]{1,255}";
  withData = cfg.dsnFile != null;

  loopback = a: lib.hasPrefix "127." a || a == "::1" || a == "localhost";

  # A writer's command words and settings end up on its unit's command line too.
  word = types.strMatching "[A-Za-z0-9_./:=@%+,-]+";
  edgeUrl = types.strMatching "https?://(\\[[0-9A-Fa-f:.]+]|[A-Za-z0-9][A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?";
  duration = types.strMatching "[0-9]+(\\.[0-9]+)?(s|m)";

  writer = types.submodule {
    options = {
      command = mkOption {
        type = types.listOf word;
        example = [ "/run/current-system/sw/bin/run-consumer" "--queue=orders" ];
        description = ''
          The background writer (a queue consumer, a job runner, an indexer) and its arguments.
          It runs only while the edge's lease names this arm's colour, with the lease's fencing
          token in `BLUEGREEN_FENCE`; a store that keeps the highest token it has seen can refuse
          a writer that lost the lease.
        '';
      };
      edgeUrl = mkOption {
        type = edgeUrl;
        example = "http://10.0.0.5:8080";
        description = "The edge whose lease (`/_bluegreen/lease`) says which colour may write.";
      };
      grace = mkOption {
        type = duration;
        default = "10s";
        description = ''
          How long the writer may take to stop after SIGTERM before it is killed; shortened to
          fit the edge's handover.
        '';
      };
      poll = mkOption {
        type = duration;
        default = "0.2s";
        description = "How often the lease is read.";
      };
      user = mkOption {
        type = types.nullOr word;
        default = null;
        description = "The user the writer runs as; null: a dynamic user of its own.";
      };
      environment = mkOption {
        type = types.attrsOf types.str;
        default = { };
        description = "Further environment of the writer.";
      };
    };
  };

  writerUnits = lib.listToAttrs (lib.mapAttrsToList
    (name: w: lib.nameValuePair "bluegreen-writer-${name}" {
      description = "bluegreen ${cfg.color} writer ${name}, while ${cfg.color} holds the lease";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      inherit (w) environment;
      serviceConfig = {
        ExecStart = lib.concatStringsSep " " ([
          "${cfg.toolsPackage}/bin/bluegreen-writer"
          "--color=${cfg.color}"
          "--edge=${w.edgeUrl}"
          "--grace=${w.grace}"
          "--poll=${w.poll}"
          "--"
        ] ++ w.command);
        # The wrapper stops the writer itself; systemd stopping the unit takes the whole group.
        KillMode = "control-group";
        Restart = "always";
        RestartSec = 1;
        DynamicUser = w.user == null;
        NoNewPrivileges = true;
      } // lib.optionalAttrs (w.user != null) { User = w.user; };
    })
    cfg.writers);
in
{
  options.services.bluegreen-arm = {
    enable = mkEnableOption "one arm (blue or green) of a bluegreen blue/green deployment";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../pkgs/bluegreen-app.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ../pkgs/bluegreen-app.nix { }";
      description = ''
        The application this arm runs. Its main program (`meta.mainProgram`) must accept
        `--color`, `--version`, `--host`, `--port` and `--health-path`, answer `GET` on the
        health path, and send `X-Bluegreen-Color` and `X-Bluegreen-Version` on every response;
        the default is the reference service, `app/server.py`.
      '';
    };

    color = mkOption {
      type = types.enum [ "blue" "green" ];
      example = "blue";
      description = "Which arm this node belongs to.";
    };

    version = mkOption {
      type = version;
      example = "v1.4.2";
      description = ''
        The application version this arm serves (letters, digits and `._+-`). A change restarts
        the service; the policy pack refuses it on the arm that is live.
      '';
    };

    listenAddress = mkOption {
      type = address;
      default = "0.0.0.0";
      example = "10.0.0.10";
      description = "Address the application listens on.";
    };

    port = mkOption {
      type = types.port;
      default = 8000;
      description = "Port the application listens on: the arm's direct endpoint.";
    };

    healthPath = mkOption {
      type = urlPath;
      default = "/healthz/ready";
      description = "Readiness path the application serves; the edge and the policy pack probe it.";
    };

    extraArgs = mkOption {
      type = types.listOf flag;
      default = [ ];
      example = [ "--delay-ms=40" ];
      description = "Further `--name=value` arguments for the application.";
    };

    dsnFile = mkOption {
      type = types.nullOr secretPath;
      default = null;
      example = "/var/lib/bluegreen/secrets/shop-blue.dsn";
      description = ''
        A file on the node, readable by root only, holding the libpq DSN of the data stack's
        database (the deploy ships it for an arm with bluegreen:schemaRevision). The app gets it
        as a systemd credential (`--dsn-file`), never on its command line or in the Nix store.
        Set together with {option}`services.bluegreen-arm.itemsShape`; null: no database.
      '';
    };

    itemsShape = mkOption {
      type = types.nullOr (types.enum [ "v1" "v2" ]);
      default = null;
      description = ''
        The shape of the items table the release reads (`--items-shape`): v1 for revision
        0001_items, v2 from 0002_items_name on.
      '';
    };

    writers = mkOption {
      type = types.attrsOf writer;
      default = { };
      example = lib.literalExpression ''
        { orders = { command = [ "/run/current-system/sw/bin/run-consumer" ]; edgeUrl = "http://10.0.0.5:8080"; }; }
      '';
      description = ''
        Background writers of this arm, each a systemd unit `bluegreen-writer-<name>` that
        runs its command under `bluegreen-writer`: only while this arm's colour holds the
        edge's lease, stopped when the pointer moves away, writes freeze or the lease cannot be
        read, so that blue and green never write at once.
      '';
    };

    toolsPackage = mkOption {
      type = types.package;
      default = pkgs.callPackage ../pkgs/bluegreen-tools.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ../pkgs/bluegreen-tools.nix { }";
      description = "The package whose `bluegreen` runs the writers.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Open {option}`services.bluegreen-arm.port` in the firewall, so that the edge node
        can reach this arm.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.openFirewall -> !(loopback cfg.listenAddress);
        message = ''
          services.bluegreen-arm.openFirewall is true but services.bluegreen-arm.listenAddress is
          the loopback address ${cfg.listenAddress}: the edge node could never reach this arm.
          Listen on the node's address (or 0.0.0.0), or set openFirewall = false.
        '';
      }
      {
        assertion = lib.all (w: w.command != [ ]) (builtins.attrValues cfg.writers);
        message = "services.bluegreen-arm.writers: every writer needs a command, and "
          + lib.concatStringsSep ", "
            (lib.filter (n: cfg.writers.${n}.command == [ ]) (builtins.attrNames cfg.writers))
          + " has none.";
      }
      {
        assertion = withData == (cfg.itemsShape != null);
        message = ''
          services.bluegreen-arm.dsnFile and services.bluegreen-arm.itemsShape go together: set
          both (an arm that reads the data stack) or neither.
        '';
      }
      {
        assertion = cfg.healthPath != "/";
        message = ''
          services.bluegreen-arm.healthPath must not be "/": readiness must be a path of its own,
          or every page view would count as a health check.
        '';
      }
    ];

    systemd.services = writerUnits // {
      bluegreen-arm = {
        description = "bluegreen ${cfg.color} arm, version ${cfg.version}";
        wantedBy = [ "multi-user.target" ];
        after = [ "network.target" ];
        serviceConfig = {
          # The options' types admit no spaces or quotes, so plain joining is exact.
          ExecStart = lib.concatStringsSep " " ([
            (lib.getExe cfg.package)
            "--color=${cfg.color}"
            "--version=${cfg.version}"
            "--host=${cfg.listenAddress}"
            "--port=${toString cfg.port}"
            "--health-path=${cfg.healthPath}"
          ] ++ lib.optionals withData [
            "--dsn-file=%d/dsn"
            "--items-shape=${toString cfg.itemsShape}"
          ] ++ cfg.extraArgs);
          # An arm that crashed must come back without an operator: the edge keeps it as the
          # rollback target.
          Restart = "always";
          RestartSec = 1;
          DynamicUser = true;
          NoNewPrivileges = true;
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateTmp = true;
        } // lib.optionalAttrs withData {
          # Copied by systemd to a directory only the service's user can read, as `dsn`.
          LoadCredential = [ "dsn:${cfg.dsnFile}" ];
        };
      };
    };

    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall cfg.port;
  };
}
