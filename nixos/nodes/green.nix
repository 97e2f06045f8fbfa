# The green arm's node, 10.0.0.11, as in the reference guide's two-node layout: the same module
# as blue.nix, another colour and the next version. See blue.nix for how this relates to what
# `pulumi up -s green` renders.
{ ... }:

{
  imports = [ ../modules/arm-node.nix ];

  networking = {
    hostName = "shop-green";
    interfaces.enp0s25.ipv4.addresses = [ { address = "10.0.0.11"; prefixLength = 24; } ];
  };

  services.bluegreen-arm = {
    enable = true;
    color = "green";
    version = "v2";
    port = 8000;
  };

  # The deploy logs in with the secret bluegreen:sshKey: authorize its public half.
  services.openssh.enable = true;
  # users.users.root.openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAA... bluegreen-deploy" ];
}
