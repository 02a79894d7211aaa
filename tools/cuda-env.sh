#!/usr/bin/env bash
# Print an `export LD_LIBRARY_PATH=...` line that puts the CUDA 13 runtime,
# cuBLAS, cuRAND and cuDNN 9 of PyTorch's nvidia-* pip wheels (when the
# python3 on PATH has them) and the CUDA toolkit's lib64 (when installed)
# on the loader's path, for `simclr-ort --ep cuda` with the GPU build that
# `make setup-gpu` fetches. Usage: eval "$(tools/cuda-env.sh)"
set -euo pipefail
python=${PYTHON:-python3}
dirs=$("$python" - <<'PY' 2>/dev/null || true
import glob, os, site, sys
roots = set(site.getsitepackages() + [site.getusersitepackages()] + sys.path)
found = []
for root in sorted(r for r in roots if r and os.path.isdir(r)):
    found += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib")))
print(":".join(dict.fromkeys(found)))
PY
)
for d in /usr/local/cuda/lib64; do
  [ -d "$d" ] && dirs=${dirs:+$dirs:}$d
done
if [ -z "$dirs" ]; then
  echo "cuda-env: no CUDA libraries found (install PyTorch with CUDA 13 wheels, or the CUDA 13 toolkit and cuDNN 9)" >&2
  exit 1
fi
echo "export LD_LIBRARY_PATH=$dirs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
