# The edge node, 10.0.0.2, in front of blue (10.0.0.10) and green (10.0.0.11) with blue live.
#
# A hand-written example. With `bluegreen:platform: nixos` the services.bluegreen-edge part is
# rendered by `pulumi up -s live` into /etc/nixos/bluegreen/shop-edge.nix from
# bluegreen:activeColor, and a flip changes exactly the active colour and the weights below (and
# the generation). They are the switch state in /etc/bluegreen-edge/switch.json, which nginx reads
# per request: `nixos-rebuild switch` does not reload nginx for a flip.
{ ... }:

{
  imports = [ ../modules/edge-node ];

  networking = {
    hostName = "shop-edge";
    interfaces.enp0s25.ipv4.addresses = [ { address = "10.0.0.2"; prefixLength = 24; } ];
  };

  services.bluegreen-edge = {
    enable = true;
    upstreamPrefix = "bluegreen_shop";
    port = 80;
    servers = [
      { address = "10.0.0.10:8000"; color = "blue"; }
      { address = "10.0.0.11:8000"; color = "green"; }
    ];
    # The switch state: the pointer and the arms' shares of traffic.
    activeColor = "blue";
    weights = { blue = 100; green = 0; };
    versions = { blue = "v1"; green = "v2"; };
    # Prometheus scraping both arms every second: the hold after a flip reads it.
    prometheus = {
      enable = true;
      port = 19090;
    };
    # Read-only mode for a maintenance window: writes get 503 and Retry-After, reads are served.
    maintenance = {
      enable = false;
      status = 503;
      retryAfter = 300;
    };
  };

  # The deploy logs in with the secret bluegreen:sshKey: authorize its public half.
  services.openssh.enable = true;
  # users.users.root.openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAA... bluegreen-deploy" ];
}
