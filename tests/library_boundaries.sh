#!/usr/bin/env bash
# Fails when a layer reaches past its boundary (docs/architecture.md):
#   - the pure core (libdeltasync_core.a) needs no libcurl symbol and no core source includes
#     the network headers or curl;
#   - server/ builds nothing from sqlite_ext/ (the hub shares sqlite_common/ instead).
# usage: library_boundaries.sh ROOT CORE_LIB
set -u
root=${1:?usage: library_boundaries.sh ROOT CORE_LIB}
core_lib=${2:?usage: library_boundaries.sh ROOT CORE_LIB}
fail=0
net_sources="http_client.cpp sync_client.cpp"

curl_syms=$(nm -u "$core_lib" 2>/dev/null | grep -E '\bcurl_' || true)
if [ -n "$curl_syms" ]; then
  echo "the core library needs libcurl:"; echo "$curl_syms"; fail=1
fi
for f in "$root"/common/*.cpp "$root"/common/*.hpp; do
  base=${f##*/}
  case " $net_sources ${net_sources//.cpp/.hpp} " in *" $base "*) continue ;; esac
  hits=$(grep -nE '#\s*include\s*[<"](curl/|common/http_client\.hpp|common/sync_client\.hpp)' "$f" || true)
  if [ -n "$hits" ]; then echo "core file $base includes the network layer: $hits"; fail=1; fi
done
# Includes and sources only: `deltasync agent` names the built deltasync.so at run time.
hits=$( { grep -rnE '#[[:space:]]*include[[:space:]]*[<"]([.][.]/)*sqlite_ext/' "$root"/server;
          grep -rnE 'sqlite_ext/[A-Za-z0-9_]+[.](c|cc|cpp|h|hpp)' "$root"/server; } || true)
if [ -n "$hits" ]; then echo "server/ reaches into sqlite_ext/:"; echo "$hits"; fail=1; fi
[ "$fail" -eq 0 ] && echo "core links no libcurl; server/ builds nothing from sqlite_ext/"
exit "$fail"
