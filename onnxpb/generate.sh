#!/usr/bin/env bash
# Regenerates onnx.proto3 and onnx.proto3.pb.go in this directory from the
# ONNX schema that Debian's python3-onnx ships, with Debian's protoc and
# protoc-gen-go (apt-get install python3-onnx protobuf-compiler protoc-gen-go).
#
# 1. onnx.proto3: ONNX's own gen_proto.py (shipped in python3-onnx) turns
#    onnx/onnx.in.proto into its proto3 form (the standard, non-ML variant;
#    the form ONNX publishes as onnx.proto3): the same wire format as
#    onnx.proto, with plain (not pointer) scalar fields in Go.
# 2. onnx.proto3.pb.go: protoc --go_out, with the Go import path given on the
#    command line (-M), so the schema stays as ONNX wrote it.
#
# Run from anywhere: go generate ./onnxpb, or bash onnxpb/generate.sh.
# The committed files came from python3-onnx 1.12.0-2+b4 (ONNX 1.12.0,
# IR version 8), protobuf-compiler 3.21.12-3+deb12u1 and protoc-gen-go
# 1.28.1-3+b2 (Debian 12); other versions print a warning, and their output
# differs at least in the version lines of the .pb.go header.
set -euo pipefail
cd "$(dirname "$0")"

ONNX_DIR=${ONNX_DIR:-/usr/lib/python3/dist-packages/onnx}
PYTHON=${PYTHON:-/usr/bin/python3}

warn_version() { # what, got, want
	if [[ "$2" != "$3" ]]; then
		echo "onnxpb/generate.sh: warning: $1 is $2, the committed files came from $3" >&2
	fi
}
warn_version python3-onnx "$(dpkg-query -W -f='${Version}' python3-onnx 2>/dev/null || echo none)" 1.12.0-2+b4
warn_version protoc "$(protoc --version)" "libprotoc 3.21.12"
warn_version protoc-gen-go "$(protoc-gen-go --version)" "protoc-gen-go v1.28.1"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" "$ONNX_DIR/gen_proto.py" -o "$tmp" onnx >/dev/null
cp "$tmp/onnx.proto3" onnx.proto3

protoc --proto_path=. \
	--go_out=. --go_opt=paths=source_relative \
	--go_opt=Monnx.proto3=github.com/simclr-ort/simclr-ort/onnxpb \
	onnx.proto3
