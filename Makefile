# simclr-ort developer targets. `make help` lists them.
SHELL := /bin/bash
GO ?= go
PYTHON ?= /usr/bin/python3

.PHONY: help setup-system setup setup-gpu demo generate test vet parity parity-mutants parity-sweep export-check bench build-mpi test-mpi gpu-check study study-smoke

help:
	@echo "make setup-system  install Debian packages (PyTorch, ONNX checker, OpenBLAS, oneDNN, Fashion-MNIST, Open MPI, libjpeg-turbo; needs root)"
	@echo "make setup         fetch Go modules and the ONNX Runtime library into .cache/onnxruntime"
	@echo "make setup-gpu     fetch an ONNX Runtime 1.29 CUDA 13 build into .cache/onnxruntime-gpu (about 330 MB)"
	@echo "make build-mpi     build bin/simclr-ort with Open MPI, for mpirun -np N bin/simclr-ort train ..."
	@echo "make test-mpi      the data-parallel tests under mpirun (Open MPI from setup-system)"
	@echo "make gpu-check     on a GPU machine: CUDA step against PyTorch on the same GPU, and benchmarks"
	@echo "make demo          train ResNet18 on Fashion-MNIST (500 steps), export, kNN of the trained encoder beside its random init"
	@echo "make test          vet, format check, unit tests, the PyTorch parity gate and its sensitivity check"
	@echo "make parity        one full training step per model against PyTorch float64 (the gate)"
	@echo "make parity-mutants  the gate must fail each of 8 deliberately wrong rules"
	@echo "make parity-sweep  the gate over 20 seeds, 1/2/4 ONNX Runtime threads, both graph variants, 1/2 PyTorch threads, then the native kernels (~2.5 h)"
	@echo "make export-check  exported encoders against torchvision's ResNet (PyTorch) and onnx-go (pure Go)"
	@echo "make bench         the pure training step and the whole loop against the PyTorch reference on this machine (~1 h)"
	@echo "make study         simclr-ort against the PyTorch reference on Fashion-MNIST: kNN and linear probe at 0/500/1000/1500 steps (~1 h)"
	@echo "make generate      regenerate graphs/ (go generate ./gen)"
	@echo "make install       simclr-ort into PREFIX/bin and ONNX Runtime into PREFIX/lib/simclr-ort (PREFIX=/usr/local)"

setup-system:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		python3-torch python3-torchvision python3-onnx python3-numpy libopenblas0-pthread \
		dataset-fashion-mnist libopenmpi-dev openmpi-bin libturbojpeg0 libdnnl2 libdnnl-dev

setup:
	$(GO) mod download
	tools/fetch-ort.sh

setup-gpu: setup
	tools/fetch-ort-gpu.sh

build-mpi:
	$(GO) build -tags mpi -o bin/simclr-ort ./cmd/simclr-ort

# Open MPI refuses root unless told; CI runs as root.
test-mpi:
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 $(GO) test -tags mpi -count=1 ./runtime/mpi ./runtime/dist ./cmd/simclr-ort

gpu-check:
	mkdir -p bin/gpu out
	$(GO) build -o bin/gpu/simclr-ort ./cmd/simclr-ort
	$(GO) build -o bin/gpu/parity ./tools/parity
	cp .cache/onnxruntime-gpu/lib*.so bin/gpu/
	python3 tools/gpu/check.py --bin bin/gpu --out out/gpu-check

generate:
	$(GO) generate ./gen

# The demo's recipe and why: README, Quick start. DEMO_STEPS shortens it.
DEMO_STEPS ?= 500
DEMO_DATA := fmnist:/usr/share/datasets/fashion-mnist
demo: setup
	$(GO) build -o bin/simclr-ort ./cmd/simclr-ort
	rm -rf out/demo && mkdir -p out
	bin/simclr-ort train --data $(DEMO_DATA) --arch resnet18 --image-size 28 --batch-size 128 --steps $(DEMO_STEPS) \
		--temperature 0.1 --crop-scale-min 0.2 --jitter-strength 0.5 --log-every 50 --out out/demo
	bin/simclr-ort export --checkpoint out/demo/checkpoint.ckpt --out out/demo/encoder.onnx
	bin/simclr-ort export --random-init --arch resnet18 --image-size 28 --out out/demo/random.onnx
	bin/simclr-ort eval --encoder out/demo/encoder.onnx --baseline out/demo/random.onnx --data $(DEMO_DATA) \
		--protocol knn --train-limit 20000

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags mpi ./...

test: vet
	$(GO) test ./...
	$(MAKE) test-mpi
	$(MAKE) parity
	$(MAKE) parity-mutants
	$(MAKE) export-check

export-check:
	$(GO) build -o bin/simclr-ort ./cmd/simclr-ort
	$(PYTHON) tools/export/compare_torch.py --simclr-ort bin/simclr-ort --arch resnet18 --stem imagenet --image-size 28
	$(PYTHON) tools/export/compare_torch.py --simclr-ort bin/simclr-ort --arch resnet50 --stem cifar --image-size 16
	bin/simclr-ort export --random-init --arch resnet18 --image-size 28 --out bin/random-resnet18.onnx
	bin/simclr-ort export --random-init --arch resnet50 --stem cifar --image-size 16 --out bin/random-resnet50.onnx
	$(GO) run ./tools/purego bin/random-resnet18.onnx bin/random-resnet50.onnx

parity:
	$(GO) run ./tools/parity -python $(PYTHON)
	$(GO) run ./tools/parity -python $(PYTHON) -kernels native

parity-mutants:
	$(GO) run ./tools/parity -python $(PYTHON) -mutants
	$(GO) run ./tools/parity -python $(PYTHON) -mutants -kernels native

PARITY_SEEDS ?= 20
parity-sweep:
	$(GO) run ./tools/parity -python $(PYTHON) -sweep -seeds $(PARITY_SEEDS)
	$(GO) run ./tools/parity -python $(PYTHON) -sweep -seeds $(PARITY_SEEDS) -kernels native -variants default

# The engine (pure step on random views, no loader: native kernels,
# standard ONNX ops and PyTorch) and the whole training loop (both sides
# with the same loader workers), side by side, alternating rounds.
bench:
	$(PYTHON) tools/bench/native_compare.py
	$(PYTHON) tools/bench/train_compare.py

STUDY_STEPS ?= 1500
STUDY_SEED ?= 1
study:
	$(GO) build -o bin/simclr-ort ./cmd/simclr-ort
	$(PYTHON) tools/study/study.py --steps $(STUDY_STEPS) --seed $(STUDY_SEED) --out runs/study --simclr-ort bin/simclr-ort

study-smoke:
	$(GO) build -o bin/simclr-ort ./cmd/simclr-ort
	$(PYTHON) tools/study/study.py --steps 30 --out out/study-smoke --train-limit 2000 --test-limit 500 --simclr-ort bin/simclr-ort

# make install [PREFIX=/usr/local] [DESTDIR=]: the command and the ONNX
# Runtime library that `make setup` fetched, in PREFIX/lib/simclr-ort/,
# where the installed binary looks (runtime/ort.InstalledLibraryDir,
# relative to the executable), so it runs from any directory without
# ONNXRUNTIME_SHARED_LIBRARY_PATH.
PREFIX ?= /usr/local
ORT_LIB := .cache/onnxruntime/libonnxruntime.so.1
.PHONY: install
install:
	@test -f $(ORT_LIB) || { echo "make install: $(ORT_LIB) is missing; run make setup first" >&2; exit 1; }
	$(GO) build -o bin/simclr-ort ./cmd/simclr-ort
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/simclr-ort
	install -m 0755 bin/simclr-ort $(DESTDIR)$(PREFIX)/bin/simclr-ort
	install -m 0644 $(ORT_LIB) $(DESTDIR)$(PREFIX)/lib/simclr-ort/libonnxruntime.so.1
	ln -sf libonnxruntime.so.1 $(DESTDIR)$(PREFIX)/lib/simclr-ort/libonnxruntime.so
	@echo "installed $(DESTDIR)$(PREFIX)/bin/simclr-ort and its ONNX Runtime library in $(DESTDIR)$(PREFIX)/lib/simclr-ort/"
