# The blue arm's node, 10.0.0.10, as in the reference guide's two-node layout.
#
# A hand-written example of everything a blue node needs. With `bluegreen:platform: nixos` the
# services.bluegreen-arm part is rendered by `pulumi up -s blue` into
# /etc/nixos/bluegreen/shop-blue.nix instead; keep the rest (the host's identity, and the key
# the deploy logs in with) in the host's own configuration.nix, which imports that file.
{ ... }:

{
  imports = [ ../modules/arm-node.nix ];

  networking = {
    hostName = "shop-blue";
    interfaces.enp0s25.ipv4.addresses = [ { address = "10.0.0.10"; prefixLength = 24; } ];
  };

  services.bluegreen-arm = {
    enable = true;
    color = "blue";
    version = "v1";
    port = 8000;
  };

  # The deploy logs in with the secret bluegreen:sshKey: authorize its public half.
  services.openssh.enable = true;
  # users.users.root.openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAA... bluegreen-deploy" ];
}
