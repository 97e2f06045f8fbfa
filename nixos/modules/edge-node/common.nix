# What the files of the edge module share (a function of nixpkgs' `lib` and the options, not a
# module): the alphabets of the values rendered into nginx.conf, where the edge keeps its state
# on the node, and what is derived from the options in more than one file.
{ lib, cfg }:

let
  inherit (lib) types;
in
rec {
  # Values that are rendered into nginx.conf: strict alphabets keep `;`, `{`, `}`, quotes and
  # spaces out, so no value can end a directive or open a block.
  hostPort = types.strMatching "(\\[[0-9A-Fa-f:.]+]|[A-Za-z0-9][A-Za-z0-9.-]{0,252}):[0-9]{1,5}";
  address = types.strMatching "[0-9A-Fa-f:.]+|[A-Za-z0-9][A-Za-z0-9.-]{0,252}";
  urlPath = types.strMatching "/[A-Za-z0-9._~/-]{0,127}";
  version = types.strMatching "[A-Za-z0-9][A-Za-z0-9._+-]{0,63}";
  fingerprint = types.strMatching "[0-9a-f]{0,64}";
  color = types.enum [ "blue" "green" ];

  # The switch state, read by switch.js per request.
  stateName = "bluegreen-edge/switch.json";
  stateFile = "/etc/${stateName}";
  # When this host began serving the lease's fence, by its own clock: the mtime of
  # `lease-<fence>` here (`LEASE_STAMP` in bluegreen/nginx.py), which switch.js serves as the
  # lease's `since`. The state in /etc is a store path (mtime 1), and the operator's clock is
  # read before the copy and the rebuild, and may be skewed: either would eat the handover.
  leaseDir = "/var/lib/bluegreen-edge/lease";
  shadowLocation = "/_bluegreen_shadow";
  cacheDir = "/var/cache/nginx/bluegreen";
  queueDir = "/var/lib/bluegreen-edge-queue";

  colors = lib.unique (map (s: s.color) cfg.servers);
  nodesOf = c: map (s: s.address) (lib.filter (s: s.color == c) cfg.servers);
  keepalive = "keepalive ${toString cfg.keepalive};";
  shadowing = cfg.shadow.percent > 0;
  q = cfg.maintenance.queue;
  queueing = q.paths != [ ];

  # Said in the description of every option that is part of the switch state.
  stateOnly = ''

    Part of the switch state ({file}`${stateFile}`): changing it does not reload nginx.
  '';
}
