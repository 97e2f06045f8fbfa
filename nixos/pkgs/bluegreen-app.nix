# The reference service (app/server.py) as a package: what services.bluegreen-arm runs unless
# its `package` option names the real application. Besides Python's standard library it needs
# prometheus-client, for the metrics it serves at /metrics (the edge's Prometheus scrapes them).
{ python3, writeShellScriptBin }:

let
  python = python3.withPackages (ps: [ ps.prometheus-client ]);
in
writeShellScriptBin "bluegreen-app" ''
  exec ${python}/bin/python3 ${../../app/server.py} "$@"
''
