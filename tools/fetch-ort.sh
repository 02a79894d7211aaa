#!/usr/bin/env bash
# Fetch the ONNX Runtime CPU shared library (Linux x64, 1.24.1) from the npm
# package onnxruntime-node, which ships it, into .cache/onnxruntime/.
# Usage: tools/fetch-ort.sh [DEST_DIR]   (idempotent; needs npm and tar)
set -euo pipefail
version=1.24.1
# sha256 of package/bin/napi-v6/linux/x64/libonnxruntime.so.1 in that package.
sha256=53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/.cache/onnxruntime}
lib=$dest/libonnxruntime.so
if [ -f "$lib" ] && [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$version" ]; then
  echo "ONNX Runtime $version already in $dest"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-ort: npm is needed (Node.js with npm, e.g. from nodejs.org or Debian's nodejs and npm packages)" >&2; exit 1; }
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tar -xzf "$tmp/onnxruntime-node-$version.tgz" -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
got=$(sha256sum "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | cut -d' ' -f1)
if [ "$got" != "$sha256" ]; then
  echo "fetch-ort: libonnxruntime.so.1 has sha256 $got, expected $sha256; refusing to install it" >&2
  exit 1
fi
install -m 0644 "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$lib.1"
ln -sf libonnxruntime.so.1 "$lib"
echo "$version" > "$dest/VERSION"
echo "ONNX Runtime $version installed as $lib"
