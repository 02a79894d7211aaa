#!/usr/bin/env bash
# Fetch an ONNX Runtime GPU build (Linux x64, ONNX Runtime 1.29.0 for CUDA 13
# and cuDNN 9) from the npm packages com.github.asus4.onnxruntime@0.4.9
# (libonnxruntime.so and libonnxruntime_providers_shared.so) and
# com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
# (libonnxruntime_providers_cuda.so, a 230 MB plugin provider) into
# .cache/onnxruntime-gpu/. That core library has no built-in CUDA provider:
# simclr-ort registers the provider library beside it as a plugin
# (runtime/ort/cuda.go). The CUDA 13 runtime, cuBLAS, cuRAND and cuDNN 9
# are not included: take them from the CUDA toolkit, or from PyTorch's
# nvidia-* wheels (see the README's CUDA section).
# Usage: tools/fetch-ort-gpu.sh [DEST_DIR]   (idempotent; needs npm and tar; about 330 MB to download)
set -euo pipefail
version=1.29.0
pkg=0.4.9
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/.cache/onnxruntime-gpu}
if [ -f "$dest/libonnxruntime_providers_cuda.so" ] && [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$version" ]; then
  echo "ONNX Runtime GPU $version already in $dest"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-ort-gpu: npm is needed (Node.js with npm)" >&2; exit 1; }
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# file, npm package, sha256 (the builds simclr-ort was checked with on an H200)
while read -r file package sha; do
  tgz=$(cd "$tmp" && npm pack --silent "$package@$pkg")
  mkdir -p "$tmp/$package"
  tar -xzf "$tmp/$tgz" -C "$tmp/$package" "package/Plugins/Linux/x64/$file"
  got=$(sha256sum "$tmp/$package/package/Plugins/Linux/x64/$file" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    echo "fetch-ort-gpu: $file from $package has sha256 $got, expected $sha; refusing to install it" >&2
    exit 1
  fi
  install -m 0644 "$tmp/$package/package/Plugins/Linux/x64/$file" "$dest/$file"
  rm -f "$tmp/$tgz"
done <<LIST
libonnxruntime.so com.github.asus4.onnxruntime 5715f06d8992ca8eeeddcce43df3a7d38f97d537052126f558e912cb312460ca
libonnxruntime_providers_shared.so com.github.asus4.onnxruntime 086ec1d5388f64153d9c63470d126693db9a182c8ce236d3a1119068471b8a0d
libonnxruntime_providers_cuda.so com.github.asus4.onnxruntime.linux-x64-gpu 56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037
LIST
echo "$version" > "$dest/VERSION"
echo "ONNX Runtime GPU $version installed in $dest; use --ort-lib $dest/libonnxruntime.so --ep cuda"
