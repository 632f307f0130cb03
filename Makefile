# CIE Desktop — build, test and demo targets. `make help` lists them.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin
# The pure core: builds and tests without cgo.
CORE := ./apdu/... ./tlv/... ./sm/... ./cie/... ./certcache/... ./pkcs11/... ./sign/... ./internal/ciesim/...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: help deps build module msi bench dist test test-package fuzz fuzz-ci check unit core e2e demo fuzz clean

help:
	@echo "make demo   build, start pcscd + the virtual CIE + a local HTTPS login service, and log in with headless"
	@echo "            Chromium through the PKCS#11 module (level-3 login); prints the greeting, saves bin/demo-login.png"
	@echo "make test   install prerequisites, then fmt/vet/deps checks, the CGO_ENABLED=0 core, and all tests with -race"
	@echo "make build  build bin/cie, bin/cie-sim and bin/libcie-pkcs11.so"
	@echo "make fuzz   run every fuzz target for FUZZTIME (default 10m)"
	@echo "make dist   reproducible release artifacts in dist/ (deb, rpm, tar.gz, Windows msi)"
	@echo "make msi    the Windows installer dist/cie-desktop-<ver>-windows-amd64.msi, cross-compiled with mingw-w64"
	@echo "make test-package   install, exercise and purge the .deb on this machine (root; CI); check the Windows msi"
	@echo "make bench  APDUs, time and memory of every card operation at 0 and 20 ms per APDU; saves bench/<date>.txt"

deps:
	@scripts/install-deps.sh

build: deps
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/cie ./cmd/cie-sim ./cmd/cie-login-demo ./cmd/cie-tray
	$(MAKE) module

# The PKCS#11 module. The version script keeps only the C_* symbols exported;
# its path must be absolute because the external linker runs elsewhere.
module:
	$(GO) build -buildmode=c-shared -trimpath \
	  -ldflags '-s -w $(LDFLAGS) -extldflags=-Wl,--version-script=$(CURDIR)/cmd/cie-pkcs11/exports.map' \
	  -o $(BIN)/libcie-pkcs11.so ./cmd/cie-pkcs11
	rm -f $(BIN)/libcie-pkcs11.h

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

core:
	CGO_ENABLED=0 $(GO) vet $(CORE)
	CGO_ENABLED=0 $(GO) test -count=1 $(CORE)

# Packages whose tests plug virtual cards into pcscd's two vpcd readers: run
# one package at a time so they never wait for each other's readers.
PCSCD_PKGS := ./pcsc ./internal/testbench ./internal/cli ./e2e ./cmd/cie-bench

test: deps check core
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v -x -F $(patsubst ./%,-e $(shell $(GO) list -m)/%,$(PCSCD_PKGS)))
	$(GO) test -race -count=1 -timeout 30m -p 1 $(PCSCD_PKGS)

demo: build
	@scripts/demo.sh

# Release artifacts (deb, rpm, tar.gz, msi, SHA256SUMS) in dist/, reproducibly.
dist: deps
	@scripts/dist.sh

# The Windows installer alone (installer/windows/README.md).
msi: deps
	@installer/windows/build-msi.sh

# Installs the .deb on this machine, checks p11-kit and a signature through
# p11-kit-proxy against cie-sim, purges it and checks nothing is left.
# Root only; meant for throw-away machines (CI). Then TestWindowsMSI builds
# the MSI twice (same bytes), checks its tables and the DLL's exports.
test-package: deps
	@scripts/install-deps.sh wine64
	CIE_REQUIRE_WINE=1 $(GO) test -tags package -count=1 -timeout 40m -run 'TestDebPackage|TestWindowsMSI' ./e2e

# Quick run: make bench BENCH_FLAGS='--big=false --reps 3'
bench: build
	@scripts/bench.sh $(BENCH_FLAGS)

FUZZTIME ?= 10m
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

# FUZZCI (default 30 s) per fuzz target, optionally one shard of several:
# make fuzz-ci FUZZSHARD=1 FUZZSHARDS=2
FUZZCI ?= 30s
FUZZSHARD ?= 1
FUZZSHARDS ?= 1
fuzz-ci:
	@scripts/fuzz.sh --shard $(FUZZSHARD)/$(FUZZSHARDS) $(FUZZCI)

clean:
	rm -rf $(BIN)
