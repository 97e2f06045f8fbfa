# Evaluates a node configuration (nixos/nodes/*.nix, or one the nixos platform renders) offline,
# with lib-stub.nix in place of nixpkgs' lib and a fake `pkgs`:
#
#   nix-instantiate --eval --strict --json nixos/tests/eval-node.nix --arg node ./shop-edge.nix
#
# The result holds the options of the services.bluegreen-* modules as the node set them (defaults
# filled in, every value checked against its option's type), what the modules define from them
# (`config`: services.nginx, services.postgresql, environment.etc, systemd.services,
# networking.firewall) and the messages of the assertions that fail. A value of the wrong type
# or an option that does not exist aborts the evaluation with the option's full path, as
# nixos-rebuild would.
{ node }:

let
  lib = import ./lib-stub.nix;
  inherit (builtins) attrNames elem isAttrs isList listToAttrs;

  # Stands in for what the modules take from nixpkgs: the app package, and the nginx module the
  # edge adds to nginx (named as in nixpkgs' pkgs/servers/http/nginx/modules.nix).
  pkgs = {
    # The package's file must be where the module says, as nixpkgs' callPackage would read it.
    callPackage = fn: _args: assert builtins.pathExists fn; {
      type = "derivation";
      name = "bluegreen-app";
      outPath = "/nix/store/00000000000000000000000000000000-bluegreen-app";
      meta.mainProgram = "bluegreen-app";
    };
    nginxModules.njs = { name = "njs"; };
    # The data node's PostgreSQL (services.bluegreen-data.package's default).
    postgresql_16 = {
      type = "derivation";
      name = "postgresql-16";
      outPath = "/nix/store/00000000000000000000000000000000-postgresql-16";
    };
  };

  args = { inherit lib pkgs config; modulesPath = "/nixpkgs/nixos/modules"; };
  nodeModule = import node args;
  # The modules the node imports and, in turn, the ones they import (the edge module is a
  # directory of files, as nixpkgs' nginx module is).
  collect = path: let m = import path args; in [ m ] ++ builtins.concatMap collect (m.imports or [ ]);
  modules = builtins.concatMap collect (nodeModule.imports or [ ]);
  definitions = removeAttrs nodeModule [ "imports" ];

  showPath = lib.concatStringsSep ".";

  checked = path: type: value:
    if (type.kind or null) == "submodule" && isAttrs value then
      resolve path type.options value
    else if (type.kind or null) == "list" && isList value then
      map (i: checked (path ++ [ "[${toString i}]" ]) type.elemType (builtins.elemAt value i))
        (lib.range 0 (builtins.length value - 1))
    else if (type.kind or null) == "attrs" && isAttrs value then
      builtins.mapAttrs (n: v: checked (path ++ [ n ]) type.elemType v) value
    else if type.check value then
      value
    else
      throw "A definition for option `${showPath path}' is not of type `${type.name}'.";

  # Options of one group; a group that declares options directly (services.bluegreen-edge,
  # .maintenance) refuses definitions it does not declare, the outer ones (services) let the
  # node's other settings pass.
  resolve = path: declared: defs:
    let
      strict = lib.any (n: lib.isOption declared.${n}) (attrNames declared);
      unknown = lib.filter (n: !(declared ? ${n})) (attrNames defs);
      one = n:
        let decl = declared.${n}; p = path ++ [ n ]; in
        if lib.isOption decl then
          if defs ? ${n} then checked p decl.type defs.${n}
          else if decl ? default then checked p decl.type decl.default
          else throw "The option `${showPath p}' is used but not defined."
        else resolve p decl (defs.${n} or { });
    in
    if strict && unknown != [ ] then
      throw "The option `${showPath (path ++ [ (builtins.head unknown) ])}' does not exist."
    else
      listToAttrs (map (n: lib.nameValuePair n (one n)) (attrNames declared));

  declaredOptions = builtins.foldl' merge { } (map (m: m.options or { }) modules);
  config = resolve [ ] declaredOptions definitions;

  # What the module system does with mkIf: a false condition removes the definition.
  removed = { _type = "removed"; };
  strip = v:
    if isAttrs v && (v._type or null) == "if" then (if v.condition then strip v.content else removed)
    else if isAttrs v && (v._type or null) == "override" then strip v.content
    else if isAttrs v && !(v ? outPath) then
      lib.filterAttrs (_: x: x != removed) (builtins.mapAttrs (_: strip) v)
    else v;

  # Definitions from several modules: lists concatenate, attribute sets merge.
  merge = a: b:
    if isAttrs a && isAttrs b && !(a ? outPath) then
      a // builtins.mapAttrs (n: v: if a ? ${n} then merge a.${n} v else v) b
    else if isList a && isList b then a ++ b
    else b;

  defined = builtins.foldl' merge { } (map (m: strip (m.config or { })) modules);
in
{
  options = config;
  config = removeAttrs defined [ "assertions" ];
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) (defined.assertions or [ ]));
}
