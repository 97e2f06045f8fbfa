# bluegreen's own programs for the nodes: `bluegreen` (the command; the arm nodes run its
# `writer`, which needs no Pulumi) and `bluegreen-queue` (the maintenance queue's service on the
# edge node). The sources are the repo's bluegreen/ and cutover/ packages and the policy pack's
# package (the hold's judge, with numpy and scipy, loaded only when it judges), shipped next to the
# node's configuration; the libraries are nixpkgs' (cryptography seals stored credentials,
# psycopg reaches a PostgreSQL store, rich and pyyaml are the command's, numpy and scipy the judge's).
{ python3, runCommand, symlinkJoin, writeShellScriptBin }:

let
  python = python3.withPackages (ps: [ ps.cryptography ps.psycopg ps.rich ps.pyyaml ps.numpy ps.scipy ]);
  src = runCommand "bluegreen-src" { } ''
    mkdir -p $out/nixos/modules
    cp -r ${../../bluegreen} $out/bluegreen
    cp -r ${../../cutover} $out/cutover
    cp -r ${../../policy/bluegreen_policy} $out/bluegreen_policy
    cp -r ${../modules/nginx} $out/nixos/modules/nginx
  '';
  program = name: module: writeShellScriptBin name ''
    export PYTHONPATH=${src}
    exec ${python}/bin/python3 -m ${module} "$@"
  '';
in
symlinkJoin {
  name = "bluegreen-tools";
  paths = [ (program "bluegreen" "cutover.cli") (program "bluegreen-queue" "bluegreen.queue_service") ];
  meta.mainProgram = "bluegreen";
}
