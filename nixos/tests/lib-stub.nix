# A small stand-in for nixpkgs' `lib`, enough to evaluate bluegreen's modules offline: this
# machine has Nix (Debian's nix-bin) but no nixpkgs. Each function has the name, arguments and
# meaning of its nixpkgs namesake, so the modules need no change to run under the real `lib`.
#
# Option types carry a `check` that eval-node.nix applies to every value, the way the module
# system refuses a bad definition; submodule, listOf and attrsOf also carry what they contain.
let
  inherit (builtins)
    all any attrNames concatStringsSep elem filter foldl' genList head isAttrs isBool isFunction
    isInt isList isString length listToAttrs match stringLength substring toString;

  type = name: check: { _type = "option-type"; inherit name check; };

  ints = {
    between = lo: hi:
      type "integer between ${toString lo} and ${toString hi} (both inclusive)"
        (x: isInt x && x >= lo && x <= hi);
    positive = type "positive integer, meaning >0" (x: isInt x && x > 0);
    unsigned = type "unsigned integer, meaning >=0" (x: isInt x && x >= 0);
  };

  types = {
    inherit ints;
    str = type "string" isString;
    int = type "signed integer" isInt;
    bool = type "boolean" isBool;
    lines = type "strings concatenated with \"\\n\"" isString;
    anything = type "anything" (_: true);
    port = ints.between 0 65535 // { name = "16 bit unsigned integer; between 0 and 65535 (both inclusive)"; };
    package = type "package" (x: isAttrs x && x ? outPath);
    strMatching = re: type "string matching the pattern ${re}" (x: isString x && match re x != null);
    enum = values: type "one of ${concatStringsSep ", " (map (v: ''"${toString v}"'') values)}"
      (x: elem x values);
    oneOf = ts: type (concatStringsSep " or " (map (t: t.name) ts)) (x: any (t: t.check x) ts);
    nullOr = t: type "null or ${t.name}" (x: x == null || t.check x) // { elemType = t; kind = "nullOr"; };
    listOf = t: type "list of ${t.name}" isList // { elemType = t; kind = "list"; };
    attrsOf = t: type "attribute set of ${t.name}" isAttrs // { elemType = t; kind = "attrs"; };
    submodule = m:
      let module = if isFunction m then m { } else m;
      in type "submodule" isAttrs // { kind = "submodule"; inherit (module) options; };
  };
in
rec {
  inherit types all any elem filter foldl' head length listToAttrs;

  mkOption = attrs: { _type = "option"; } // attrs;
  mkEnableOption = name: mkOption {
    type = types.bool;
    default = false;
    example = true;
    description = "Whether to enable ${name}.";
  };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkDefault = content: { _type = "override"; priority = 1000; inherit content; };
  mkForce = content: { _type = "override"; priority = 50; inherit content; };
  literalExpression = text: { _type = "literalExpression"; inherit text; };
  literalMD = text: { _type = "literalMD"; inherit text; };

  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  optionalString = cond: s: if cond then s else "";
  optionalAttrs = cond: as: if cond then as else { };
  concatStringsSep = builtins.concatStringsSep;
  concatMapStringsSep = sep: f: xs: concatStringsSep sep (map f xs);
  concatStrings = concatStringsSep "";
  concatMap = f: xs: builtins.concatLists (map f xs);
  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
  nameValuePair = name: value: { inherit name value; };
  mapAttrs = builtins.mapAttrs;
  mapAttrsToList = f: as: map (n: f n as.${n}) (attrNames as);
  filterAttrs = pred: as:
    listToAttrs (map (n: nameValuePair n as.${n}) (filter (n: pred n as.${n}) (attrNames as)));
  findFirst = pred: default: xs: let found = filter pred xs; in if found == [ ] then default else head found;
  unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
  range = first: last: if first > last then [ ] else genList (n: first + n) (last - first + 1);
  getExe = p: "${p}/bin/${p.meta.mainProgram}";
  versionAtLeast = v: least: builtins.compareVersions v least >= 0;
  isOption = x: isAttrs x && (x._type or null) == "option";
}
