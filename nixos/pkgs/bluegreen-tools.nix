# bluegreen's agents for the nodes: `bluegreen-writer` (an arm node's background writers, each
# run only while its colour holds the edge's lease) and `bluegreen-queue` (the maintenance queue's
# service on the edge node). The sources are the repo's core (bluegreen/, with the nginx text it
# reads, bluegreen/nginx_text/) and its agents (agents/), nothing of the command or the Pulumi
# program, shipped next to the node's configuration; the libraries are nixpkgs' (cryptography
# seals stored credentials, psycopg reaches a PostgreSQL store).
{ python3, runCommand, symlinkJoin, writeShellScriptBin }:

let
  python = python3.withPackages (ps: [ ps.cryptography ps.psycopg ]);
  src = runCommand "bluegreen-src" { } ''
    mkdir -p $out
    cp -r ${../../bluegreen} $out/bluegreen
    cp -r ${../../agents} $out/agents
  '';
  program = name: module: writeShellScriptBin name ''
    export PYTHONPATH=${src}
    exec ${python}/bin/python3 -m ${module} "$@"
  '';
in
symlinkJoin {
  name = "bluegreen-tools";
  paths = [
    (program "bluegreen-writer" "agents.arm.writer")
    (program "bluegreen-queue" "agents.edge.queue_service")
  ];
  meta.mainProgram = "bluegreen-writer";
}
