# sidecar-lifecycle-policy: build, test and release targets.
#
#   make quickstart      build the policy and evaluate every request of test_data/
#   make test            every test: rustfmt check, clippy, e2e.bats (skipped
#                        without kwctl), unit, Wasm host and property tests
#   make goldens         rewrite test_data/*.golden.json from the compiled module
#   make e2e-tests       bats e2e.bats against the annotated module (needs kwctl, bats)
#   make release-e2e-tests  annotate, push to a local registry, pull, run from
#                        registry:// and serve through policy-server (e2e-release.bats)
#   make push REGISTRY=ghcr.io/sidecar-lifecycle
#   make artifacthub     regenerate artifacthub-pkg.yml (needs kwctl)
#
# `make quickstart` and `make test` do their own set-up on a machine with
# rustup, make and a C toolchain: they add the wasm32-wasip1 target and the
# rustfmt and clippy components with rustup. What needs root (the Debian
# packages bats, jq and binaryen) or a separate download (kwctl) is skipped
# with one line saying what was skipped and how to get it. STRICT_TOOLS=1 (set
# by .ci/run and the release workflow) turns each of those skips into a
# failure, but for kwctl: without it e2e.bats reports every test as skipped.

# The crate version; it must equal io.kubewarden.policy.version in metadata.yml
# and the release tag without its leading v.
VERSION := $(shell sed -n 's/^version[[:space:]]*=[[:space:]]*"\(.*\)"/\1/p' Cargo.toml | head -n 1)
METADATA_VERSION = $(shell grep 'io.kubewarden.policy.version' metadata.yml | awk '{print $$2}' | tr -d '"')

WASM_TARGET := wasm32-wasip1
CRATE_WASM := sidecar_lifecycle_policy.wasm
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
# Extra cargo flags, e.g. CARGO_FLAGS=--locked in CI.
CARGO_FLAGS ?=

KWCTL ?= kwctl
BATS ?= bats
JQ ?= jq
KWCTL_DOCS := https://docs.kubewarden.io/howtos/install-kwctl
BATS_DOCS := https://bats-core.readthedocs.io/en/stable/installation.html
JQ_DOCS := https://jqlang.org/download/

# Empty: a missing optional tool is skipped with one line. 1: it is a failure.
STRICT_TOOLS ?=

# Where `make push` publishes: $(REGISTRY)/$(OCI_REPOSITORY):v$(VERSION).
REGISTRY ?=
OCI_REPOSITORY ?= policies/sidecar-lifecycle

SOURCE_FILES := $(shell find src -name '*.rs' 2>/dev/null)
# The AdmissionRequests of test_data/, without the settings and goldens beside them.
REQUEST_FILES = $(filter-out %.settings.json %.golden.json,$(wildcard test_data/*.json))

# A recipe line that fails with a clear message when kwctl is missing.
REQUIRE_KWCTL = @command -v $(KWCTL) >/dev/null 2>&1 || { \
	echo "kwctl is not installed: see $(KWCTL_DOCS)" >&2; exit 1; }

# Shell code for one skipped step: `skipped WHAT: WHY (HOW TO GET IT)` on one
# line, and a failure under STRICT_TOOLS=1. The argument is the text after
# "skipped " (no commas: it is a $(call) argument).
skip = echo "skipped $(1)"; if [ -n "$(STRICT_TOOLS)" ]; then echo "STRICT_TOOLS is set: a skipped step is a failure" >&2; exit 1; fi

# $(call cargo_tool,COMPONENT,SUBCOMMAND): shell condition, true when `cargo
# SUBCOMMAND` works, after `rustup component add COMPONENT` when it did not;
# otherwise it prints one skip line and is false.
cargo_tool = { cargo $(2) --version >/dev/null 2>&1 || \
	{ command -v rustup >/dev/null 2>&1 && echo "rustup component add $(1)" && \
	  rustup component add $(1) >/dev/null && cargo $(2) --version >/dev/null 2>&1; } || \
	{ $(call skip,cargo $(2): the $(1) component is not installed and rustup could not add it (rustup component add $(1))); false; }; }

.DEFAULT_GOAL := policy.wasm

# wasm-opt (binaryen, e.g. `apt-get install binaryen`) post-optimizes the
# module when it is installed: about 12% smaller and 5-14% faster calls
# (docs/performance.md). Without it, or should it fail, policy.wasm is the
# module as cargo built it, with one line saying so; under STRICT_TOOLS=1
# (CI, the release workflow) either is a failure, so that the module tested
# there is the optimized one the release ships. The stripped module has no
# target_features section, so the flags name the features rustc enables by
# default for wasm32-wasip1. `make policy.wasm WASM_OPT=` skips the step.
WASM_OPT ?= wasm-opt
WASM_OPT_FLAGS ?= -O3 --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
	--enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue
CARGO_WASM = $(TARGET_DIR)/$(WASM_TARGET)/release/$(CRATE_WASM)

# Adds the wasm32-wasip1 target to the active toolchain when it lacks it. An
# order-only prerequisite of policy.wasm: it runs first, and never makes
# policy.wasm out of date by itself.
.PHONY: wasm-target
wasm-target:
	@if ! command -v rustup >/dev/null 2>&1; then \
		echo "no rustup: the Rust toolchain must provide the $(WASM_TARGET) target itself (https://rustup.rs)"; \
	elif ! rustup target list --installed | grep -qx '$(WASM_TARGET)'; then \
		echo "rustup target add $(WASM_TARGET)"; \
		rustup target add $(WASM_TARGET); \
	fi

policy.wasm: Cargo.toml Cargo.lock $(SOURCE_FILES) | wasm-target
	cargo build $(CARGO_FLAGS) --target=$(WASM_TARGET) --release
	@if [ -z "$(WASM_OPT)" ]; then \
		echo "WASM_OPT is empty: policy.wasm is the module as cargo built it"; \
		cp $(CARGO_WASM) $@; \
	elif command -v $(WASM_OPT) >/dev/null 2>&1; then \
		echo "$(WASM_OPT) $(WASM_OPT_FLAGS) $(CARGO_WASM) -o $@"; \
		if $(WASM_OPT) $(WASM_OPT_FLAGS) $(CARGO_WASM) -o $@.tmp; then \
			mv $@.tmp $@; \
		else \
			rm -f $@.tmp; \
			echo "warning: $(WASM_OPT) failed; policy.wasm is the module as cargo built it" >&2; \
			if [ -n "$(STRICT_TOOLS)" ]; then exit 1; fi; \
			cp $(CARGO_WASM) $@; \
		fi; \
	else \
		$(call skip,wasm-opt: binaryen is not installed so policy.wasm is the module as cargo built it (apt-get install binaryen)); \
		cp $(CARGO_WASM) $@; \
	fi

annotated-policy.wasm: policy.wasm metadata.yml README.md
	$(REQUIRE_KWCTL)
	$(KWCTL) annotate -m metadata.yml -u README.md -o $@ policy.wasm

# fmt and lint add the rustfmt and clippy components with rustup when they are
# missing.
.PHONY: fmt
fmt:
	@if $(call cargo_tool,rustfmt,fmt); then \
		echo "cargo fmt --all -- --check"; \
		cargo fmt --all -- --check; \
	fi

.PHONY: lint
lint:
	@if $(call cargo_tool,clippy,clippy); then \
		echo "cargo clippy $(CARGO_FLAGS) --all-targets -- -D warnings"; \
		cargo clippy $(CARGO_FLAGS) --all-targets -- -D warnings; \
	fi

# The Wasm host tests load the module named by POLICY_WASM. The crate has no
# doctests; benches and examples are built by `make lint`.
.PHONY: test
test: fmt lint policy.wasm test-e2e
	POLICY_WASM=$(CURDIR)/policy.wasm cargo test $(CARGO_FLAGS) --lib --tests

# Rewrites every test_data/<scenario>.golden.json from the compiled module:
# the golden test itself, in update mode, so that the code that checks the
# goldens is the code that writes them. Review `git diff test_data/` after.
.PHONY: goldens
goldens: policy.wasm
	UPDATE_GOLDENS=1 POLICY_WASM=$(CURDIR)/policy.wasm cargo test $(CARGO_FLAGS) --test goldens -- --nocapture

# e2e.bats as `make test` runs it. It needs bats and jq: without either it is
# skipped with one line. With kwctl it runs as `make e2e-tests`; without kwctl
# it still runs and reports each test as skipped, with the reason.
.PHONY: test-e2e
test-e2e:
	@if ! command -v $(BATS) >/dev/null 2>&1; then \
		$(call skip,e2e.bats: bats is not installed (apt-get install bats; or see $(BATS_DOCS))); \
	elif ! command -v $(JQ) >/dev/null 2>&1; then \
		$(call skip,e2e.bats: jq is not installed (apt-get install jq; or see $(JQ_DOCS))); \
	elif command -v $(KWCTL) >/dev/null 2>&1; then \
		$(MAKE) e2e-tests; \
	else \
		echo "$(BATS) e2e.bats"; \
		$(BATS) e2e.bats; \
	fi

.PHONY: e2e-tests
e2e-tests: annotated-policy.wasm
	$(REQUIRE_KWCTL)
	@command -v $(BATS) >/dev/null 2>&1 || { \
		echo "bats is not installed: see $(BATS_DOCS)" >&2; exit 1; }
	$(BATS) e2e.bats

# The release path outside CI (e2e-release.bats): annotate policy.wasm, push it
# to an OCI registry started on 127.0.0.1, pull it, run it from registry:// and
# serve it through policy-server. Needs kwctl, policy-server, docker-registry
# (or distribution's registry), curl, jq and bats; E2E_RELEASE_STRICT=1 turns
# the skip of a test whose tool is missing into a failure.
.PHONY: release-e2e-tests
release-e2e-tests: policy.wasm
	$(REQUIRE_KWCTL)
	@command -v $(BATS) >/dev/null 2>&1 || { \
		echo "bats is not installed: see $(BATS_DOCS)" >&2; exit 1; }
	KWCTL=$(KWCTL) POLICY_WASM=$(CURDIR)/policy.wasm E2E_RELEASE_STRICT=1 $(BATS) e2e-release.bats

.PHONY: check-version
check-version:
	@test "$(VERSION)" = "$(METADATA_VERSION)" || { \
		echo "Cargo.toml version $(VERSION) differs from io.kubewarden.policy.version $(METADATA_VERSION) in metadata.yml" >&2; exit 1; }

.PHONY: check-registry
check-registry:
	@test -n "$(REGISTRY)" || { \
		echo "REGISTRY is required, e.g. make push REGISTRY=ghcr.io/sidecar-lifecycle" >&2; exit 1; }

.PHONY: push
push: check-registry check-version annotated-policy.wasm
	$(REQUIRE_KWCTL)
	$(KWCTL) push annotated-policy.wasm $(REGISTRY)/$(OCI_REPOSITORY):v$(VERSION)

# kwctl takes the version from io.kubewarden.policy.version in metadata.yml:
# its --version flag is deprecated and ignored, so check-version keeps the two
# in step instead.
.PHONY: artifacthub
artifacthub: check-version
	$(REQUIRE_KWCTL)
	$(KWCTL) scaffold artifacthub --metadata-path metadata.yml --questions-path questions-ui.yml --output artifacthub-pkg.yml

# The newcomer's first command (README): build the module and evaluate every
# request of test_data/ with it. The first run also compiles the evaluator's
# dependencies (wasmtime, the waPC host, and the test crates) in the dev
# profile, once; `make test` reuses them.
.PHONY: quickstart
quickstart: first-run-note policy.wasm
	POLICY_WASM=$(CURDIR)/policy.wasm cargo run --example evaluate -- $(REQUEST_FILES)

.PHONY: first-run-note
first-run-note:
	@test -e $(TARGET_DIR)/debug/examples/evaluate || \
		echo "first run: cargo builds the module, then compiles wasmtime (the waPC host) and the test crates for the evaluator, once: about 3 minutes on 2 cores, plus downloading the crates; later runs take seconds"

.PHONY: clean
clean:
	cargo clean
	rm -f policy.wasm annotated-policy.wasm
