# The switch state in /etc (what a flip changes, and nothing nginx reads at start), and the stamp
# of the writer lease's fence that activation leaves on the node.
{ config, lib, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (lib) mkIf;
  inherit (import ./common.nix { inherit lib cfg; }) stateName leaseDir shadowing q queueing;

  leaseStamp = "lease-${toString cfg.lease.fence}";
  # The requests maintenance refuses and shadow traffic leaves alone (bluegreen/switch.py).
  writeMethods = [ "POST" "PUT" "PATCH" "DELETE" ];
  limited = cfg.limits.rate > 0 || cfg.limits.connections > 0;

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
    lease = {
      color = if cfg.lease.shared then cfg.lease.holder else cfg.activeColor;
      inherit (cfg.lease) fence since handover;
    } // lib.optionalAttrs cfg.lease.shared { shared = true; };
    shadow = if shadowing then { inherit (cfg.shadow) percent writes; } else null;
    limits = if limited then { inherit (cfg.limits) retryAfter until; } else null;
    warm = null;
    probe = cfg.probeToken;
    generation = cfg.generation;
  };
in
{
  config = mkIf cfg.enable {
    # The switch state: a flip changes this file and nothing nginx reads at start.
    environment.etc.${stateName}.text = builtins.toJSON state;

    # Stamp the lease's fence once the new /etc is in place (after "etc"), so the handover runs
    # from when this host serves it, by this host's clock; a fence it already serves keeps its
    # stamp (a weight or maintenance change, a reboot). Until the stamp exists switch.js counts
    # the handover from the request. Other fences' stamps go: one served again (a manual
    # rollback) starts its handover afresh. A shared lease is not stamped here: the live stack
    # stamps every edge node at once (platforms/nixos/lease_release.py).
    system.activationScripts.bluegreen-edge-lease = {
      deps = [ "etc" ];
      text = ''
        mkdir -p -m 0755 ${leaseDir}
      '' + lib.optionalString (!cfg.lease.shared) ''
        if [ ! -e ${leaseDir}/${leaseStamp} ]; then
          touch ${leaseDir}/${leaseStamp}
          for stamp in ${leaseDir}/lease-*; do
            [ "$stamp" = ${leaseDir}/${leaseStamp} ] || rm -f "$stamp"
          done
        fi
      '';
    };
  };
}
