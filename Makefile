# sidecar-lifecycle-policy: build, test and release targets.
#
#   make quickstart      build the policy and evaluate every request of test_data/
#   make test            every test: rustfmt check, clippy, e2e.bats (skipped
#                        without kwctl), unit, Wasm host and property tests
#   make e2e-tests       bats e2e.bats against the annotated module (needs kwctl, bats)
#   make release-e2e-tests  annotate, push to a local registry, pull, run from
#                        registry:// and serve through policy-server (e2e-release.bats)
#   make push REGISTRY=ghcr.io/sidecar-lifecycle
#   make artifacthub     regenerate artifacthub-pkg.yml (needs kwctl)

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
KWCTL_DOCS := https://docs.kubewarden.io/howtos/install-kwctl

# Where `make push` publishes: $(REGISTRY)/$(OCI_REPOSITORY):v$(VERSION).
REGISTRY ?=
OCI_REPOSITORY ?= policies/sidecar-lifecycle

SOURCE_FILES := $(shell find src -name '*.rs' 2>/dev/null)

# A recipe line that fails with a clear message when kwctl is missing.
REQUIRE_KWCTL = @command -v $(KWCTL) >/dev/null 2>&1 || { \
	echo "kwctl is not installed: see $(KWCTL_DOCS)" >&2; exit 1; }

.DEFAULT_GOAL := policy.wasm

# wasm-opt (binaryen, e.g. `apt-get install binaryen`) post-optimizes the
# module when it is installed: about 12% smaller and 5-14% faster calls
# (docs/performance.md). Without it, or should it fail, policy.wasm is the
# module as cargo built it. The stripped module has no target_features
# section, so the flags name the features rustc enables by default for
# wasm32-wasip1. `make policy.wasm WASM_OPT=` skips the step.
WASM_OPT ?= wasm-opt
WASM_OPT_FLAGS ?= -O3 --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
	--enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue
CARGO_WASM = $(TARGET_DIR)/$(WASM_TARGET)/release/$(CRATE_WASM)

policy.wasm: Cargo.toml Cargo.lock $(SOURCE_FILES)
	cargo build $(CARGO_FLAGS) --target=$(WASM_TARGET) --release
	@if [ -n "$(WASM_OPT)" ] && command -v $(WASM_OPT) >/dev/null 2>&1; then \
		echo "$(WASM_OPT) $(WASM_OPT_FLAGS) $(CARGO_WASM) -o $@"; \
		if $(WASM_OPT) $(WASM_OPT_FLAGS) $(CARGO_WASM) -o $@.tmp; then \
			mv $@.tmp $@; \
		else \
			rm -f $@.tmp; \
			echo "warning: $(WASM_OPT) failed; policy.wasm is the module as cargo built it" >&2; \
			cp $(CARGO_WASM) $@; \
		fi; \
	else \
		echo "no wasm-opt (binaryen): policy.wasm is the module as cargo built it"; \
		cp $(CARGO_WASM) $@; \
	fi

annotated-policy.wasm: policy.wasm metadata.yml README.md
	$(REQUIRE_KWCTL)
	$(KWCTL) annotate -m metadata.yml -u README.md -o $@ policy.wasm

.PHONY: fmt
fmt:
	cargo fmt --all -- --check

.PHONY: lint
lint:
	cargo clippy $(CARGO_FLAGS) --all-targets -- -D warnings

# The Wasm host tests load the module named by POLICY_WASM. Without kwctl,
# e2e.bats still runs and reports each test as skipped, with the reason. The
# crate has no doctests; benches and examples are built by `make lint`.
.PHONY: test
test: fmt lint policy.wasm
	@if command -v $(KWCTL) >/dev/null 2>&1; then $(MAKE) e2e-tests; else $(BATS) e2e.bats; fi
	POLICY_WASM=$(CURDIR)/policy.wasm cargo test $(CARGO_FLAGS) --lib --tests

.PHONY: e2e-tests
e2e-tests: annotated-policy.wasm
	$(REQUIRE_KWCTL)
	@command -v $(BATS) >/dev/null 2>&1 || { \
		echo "bats is not installed: see https://bats-core.readthedocs.io/en/stable/installation.html" >&2; exit 1; }
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
		echo "bats is not installed: see https://bats-core.readthedocs.io/en/stable/installation.html" >&2; exit 1; }
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
# request of test_data/ with it.
.PHONY: quickstart
quickstart: policy.wasm
	POLICY_WASM=$(CURDIR)/policy.wasm cargo run --example evaluate -- test_data/*.json

.PHONY: clean
clean:
	cargo clean
	rm -f policy.wasm annotated-policy.wasm
