#!/usr/bin/env bash
# npm run gen: regenerates the FlatBuffers TypeScript in src/transport/generated
# from schema/*.fbs with Debian's flatc (apt-get install flatbuffers-compiler).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v flatc >/dev/null || { echo "gen: flatc not found; apt-get install flatbuffers-compiler" >&2; exit 1; }
out=src/transport/generated
rm -rf "$out"
flatc --ts -o "$out" schema/*.fbs
# flatc 2.0.8 writes extensionless relative imports; Node's ES modules need ".js".
find "$out" -name '*.ts' -print0 | xargs -0 sed -i -E "s#(from '\.{1,2}/[^']*)';#\1.js';#"
