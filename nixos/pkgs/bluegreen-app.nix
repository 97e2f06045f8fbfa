# The reference service (app/server.py) as a package: what services.bluegreen-arm runs unless
# its `package` option names the real application. It ships app/'s Python files (server.py
# imports idempotency.py, metrics.py and items.py beside it), not its migrations, which run
# where `pulumi` runs. Besides Python's standard library it needs prometheus-client, for the
# metrics it serves at /metrics (the edge's Prometheus scrapes them), and psycopg (3), for the
# data stack's database of an arm with bluegreen:schemaRevision.
{ python3, writeShellScriptBin }:

let
  python = python3.withPackages (ps: [ ps.prometheus-client ps.psycopg ]);
  app = builtins.path {
    path = ../../app;
    name = "bluegreen-app-src";
    filter = path: type: type == "regular" && builtins.match ".*\\.py" (baseNameOf path) != null;
  };
in
writeShellScriptBin "bluegreen-app" ''
  exec ${python}/bin/python3 ${app}/server.py "$@"
''
