# The reference service (app/server.py) as a package: what services.bluegreen-arm runs unless
# its `package` option names the real application. It needs nothing beyond Python's standard
# library.
{ python3, writeShellScriptBin }:

writeShellScriptBin "bluegreen-app" ''
  exec ${python3}/bin/python3 ${../../app/server.py} "$@"
''
