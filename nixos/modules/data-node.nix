# The data stack's database on NixOS: PostgreSQL (nixpkgs' services.postgresql) that both arms
# share, with the role and database the arms and the migration connect as.
#
# `pulumi up -s data` renders /etc/nixos/bluegreen/<app>-data.nix, which imports this module and
# sets the options below, and ships the role's password as a file only root can read
# (/var/lib/bluegreen/secrets/<app>-data.password, away from /etc/nixos, which a flake's rebuild
# copies whole into the store). The password never enters the Nix store: the module knows the
# file by its path (a string, never a Nix path) and hands it to one oneshot unit as a systemd
# credential, which sets it with psql over the local socket. The deploy restarts that unit when
# the password changes.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.bluegreen-data;
  inherit (lib) mkEnableOption mkIf mkOption types;

  # Everything below ends up in postgresql.conf, pg_hba.conf or a unit's script: strict
  # alphabets keep quotes, spaces and newlines out.
  address = types.strMatching "[0-9A-Fa-f:.]+|[A-Za-z0-9][A-Za-z0-9.-]{0,252}";
  name = types.strMatching "[a-z][a-z0-9-]{0,31}";
  cidr = types.strMatching "[0-9A-Fa-f:.]+/[0-9]{1,3}";
  secretPath = types.strMatching "/[A-Za-z0-9._/-]{1,255}";

  loopback = a: lib.hasPrefix "127." a || a == "::1" || a == "localhost";

  hba = lib.concatMapStringsSep "\n"
    (c: ''host "${cfg.database}" "${cfg.role}" ${c} scram-sha-256'')
    cfg.clients;
in
{
  options.services.bluegreen-data = {
    enable = mkEnableOption "the PostgreSQL that the arms of a bluegreen deployment share";

    package = mkOption {
      type = types.package;
      default = pkgs.postgresql_16;
      defaultText = lib.literalExpression "pkgs.postgresql_16";
      description = ''
        The PostgreSQL to run. Pinned on purpose: nixpkgs keeps each major version's data in a
        directory of its own, so a new major (a host's stateVersion moving the default, say)
        would start on an empty database. Upgrade a major with pg_upgrade, then change this.
      '';
    };

    listenAddress = mkOption {
      type = address;
      example = "10.0.0.20";
      description = "The node's address PostgreSQL listens on (bluegreen:dataNode).";
    };

    port = mkOption {
      type = types.port;
      default = 15432;
      description = "The port PostgreSQL listens on (bluegreen:databasePort).";
    };

    database = mkOption {
      type = name;
      default = "shop";
      description = "The database the arms use, named after bluegreen:appName.";
    };

    role = mkOption {
      type = name;
      default = "bluegreen";
      description = "The role the arms and the migration connect as: the database's owner.";
    };

    passwordFile = mkOption {
      type = secretPath;
      example = "/var/lib/bluegreen/secrets/shop-data.password";
      description = ''
        A file on the node, readable by root only, holding the role's password (the deploy ships
        it from the secret bluegreen:databasePassword). Never the password itself: anything in
        the configuration lands in the world-readable Nix store.
      '';
    };

    clients = mkOption {
      type = types.listOf cidr;
      default = [ "10.0.0.0/8" "172.16.0.0/12" "192.168.0.0/16" "fd00::/8" ];
      description = ''
        The networks that may connect as the role to the database (pg_hba.conf, scram-sha-256):
        the arm nodes', and the machine's that runs `pulumi up -s data` (the migration).
        Nothing else may connect over the network.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Open {option}`services.bluegreen-data.port` in the firewall (pg_hba.conf still refuses
        every network but {option}`services.bluegreen-data.clients`).
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.clients != [ ];
        message = ''
          services.bluegreen-data.clients is empty: no arm, and no migration, could connect to the
          database. List the arm nodes' network and the deploying machine's.
        '';
      }
      {
        assertion = cfg.openFirewall -> !(loopback cfg.listenAddress);
        message = ''
          services.bluegreen-data.listenAddress is the loopback address ${cfg.listenAddress}: the
          arm nodes could never reach the database. Listen on the node's address.
        '';
      }
    ];

    services.postgresql = {
      enable = true;
      package = cfg.package;
      settings = {
        listen_addresses = lib.mkForce cfg.listenAddress;
        port = cfg.port;
        password_encryption = "scram-sha-256";
      };
      authentication = hba;
    };

    # The role, its password and the database, as the local platform's initdb makes them. Run
    # as postgres over the local socket; the password comes in as a credential and goes to the
    # server in one statement that is never logged.
    systemd.services.bluegreen-data-password = {
      description = "bluegreen: the role ${cfg.role}, its password and the database ${cfg.database}";
      wantedBy = [ "multi-user.target" ];
      requires = [ "postgresql.service" ];
      after = [ "postgresql.service" ];
      path = [ cfg.package ];
      serviceConfig = {
        Type = "oneshot";
        User = "postgres";
        LoadCredential = [ "password:${cfg.passwordFile}" ];
        NoNewPrivileges = true;
        PrivateTmp = true;
      };
      script = ''
        psql -v ON_ERROR_STOP=1 --no-psqlrc -q -d postgres \
          -v role=${cfg.role} -v db=${cfg.database} <<'SQL'
        SET log_statement = 'none';
        SET log_min_error_statement = 'panic';
        SET log_min_duration_statement = -1;
        SELECT format('CREATE ROLE %I LOGIN', :'role')
          WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
        \set pw `cat "$CREDENTIALS_DIRECTORY/password"`
        ALTER ROLE :"role" WITH LOGIN NOSUPERUSER PASSWORD :'pw';
        \unset pw
        SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
          WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
        ALTER DATABASE :"db" OWNER TO :"role";
        REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
        SQL
      '';
    };

    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall cfg.port;
  };
}
