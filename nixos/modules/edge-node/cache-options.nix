# services.bluegreen-edge.cache: the edge cache of the answers an arm marks cacheable.
{ config, lib, ... }:

let
  cfg = config.services.bluegreen-edge;
  inherit (lib) mkOption types;
  inherit (import ./common.nix { inherit lib cfg; }) cacheDir;
in
{
  options.services.bluegreen-edge.cache = {
    enable = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Cache the GET answers an arm marks cacheable (`Cache-Control: max-age`) at the edge,
        in {file}`${cacheDir}`, keyed by the colour and the version that served them
        ({option}`services.bluegreen-edge.versions`), so that a flip or a rollback never
        serves the other arm's content. bluegreen's probes bypass it.
      '';
    };
    maxSize = mkOption {
      type = types.ints.positive;
      default = 256;
      description = "Disk the edge cache may use, in MiB (bluegreen:cacheMaxSizeMb).";
    };
  };
}
