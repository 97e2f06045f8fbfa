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

  loopback = a: lib.hasPrefix "127." a || a == "::1" || a == "localhost";
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
        assertion = cfg.healthPath != "/";
        message = ''
          services.bluegreen-arm.healthPath must not be "/": readiness must be a path of its own,
          or every page view would count as a health check.
        '';
      }
    ];

    systemd.services.bluegreen-arm = {
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
      };
    };

    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall cfg.port;
  };
}
