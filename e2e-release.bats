#!/usr/bin/env bats
# shellcheck disable=SC2016,SC2030,SC2031
# (jq programs use $variables in single quotes; each bats test is a subshell.)
#
# The release path of sidecar-lifecycle-policy, checked outside CI with the
# real tools and the files as committed (make release-e2e-tests):
#
#   1. kwctl annotate policy.wasm with metadata.yml and README.md, as the
#      Makefile's annotated-policy.wasm recipe and the release workflow do;
#   2. kwctl push it to an OCI registry started on 127.0.0.1 for this file;
#   3. kwctl pull it back, list it (kwctl policies), inspect its metadata;
#   4. kwctl run it from registry://, alone and through every examples/*.yaml;
#   5. serve it with policy-server, which downloads it from registry://, and
#      send it AdmissionReviews as the API server would.
#
# Needs kwctl, policy-server, an OCI registry binary (the Debian package
# docker-registry: /usr/bin/docker-registry; or distribution's `registry`),
# curl, jq (1.6+) and bats 1.4+ (BATS_FILE_TMPDIR). A test whose tools are
# missing is skipped with the reason (E2E_RELEASE_STRICT=1, set by the
# Makefile, makes it fail instead). Overrides: KWCTL, POLICY_SERVER,
# OCI_REGISTRY_BIN, POLICY_WASM (default: ./policy.wasm, `make policy.wasm`).
#
# Everything runs on 127.0.0.1 (free ports picked at start-up) and under
# $BATS_FILE_TMPDIR: the registry's storage, kwctl's store and configuration
# (XDG_* directories), policy-server's downloads. teardown_file stops the
# registry and policy-server by the pids recorded when they were started.
# kwctl run and policy-server still try to refresh Sigstore's TUF root on their
# own (no flag turns that off in policy-server 1.31); offline they log a
# warning and go on, since no verification is requested here.
#
# Every command and flag below was checked against the sources of
# kubewarden/kubewarden-controller at 3460bb7 (May 2026), which now holds kwctl
# and policy-server under crates/ (version 1.36.0-beta.1), and against the last
# standalone releases, kubewarden/kwctl and kubewarden/policy-server v1.31.0:
#
#   kwctl annotate --metadata-path --usage-path --output-path WASM
#       crates/kwctl/cli-docs.md "kwctl annotate"; crates/kwctl/src/annotate.rs
#       stores the usage file as the io.kubewarden.policy.usage annotation
#   kwctl push --output json --sources-path WASM registry://HOST:PORT/PATH:TAG
#       crates/kwctl/cli-docs.md "kwctl push" (-o text|json); crates/kwctl/src/
#       main.rs prints {"immutable_ref": "HOST:PORT/PATH@sha256:..."};
#       crates/kwctl/src/push.rs drops multi-line annotations (the usage) from
#       the OCI manifest and copies io.kubewarden.policy.source to
#       org.opencontainers.image.source; the layer media type is oci-client's
#       WASM_LAYER_MEDIA_TYPE, application/vnd.wasm.content.layer.v1+wasm
#   sources file: insecure_sources: ["127.0.0.1:PORT"]
#       crates/policy-fetcher/src/sources.rs (RawSources); policy-server's
#       sources.yml.example; crates/kwctl/tests/airgap.rs writes the same file
#       for a local registry:2 and passes it with --sources-path. For an
#       insecure source, crates/policy-fetcher/src/registry/mod.rs
#       (try_with_protocols) and lib.rs fall back from HTTPS to plain HTTP
#   kwctl pull --sources-path [--output-path FILE] URI
#       crates/kwctl/cli-docs.md "kwctl pull"; a tagged registry:// URI
#       already in the store is not fetched again (crates/policy-fetcher/src/
#       lib.rs), hence a fresh store for the kwctl run tests
#   kwctl policies
#       crates/kwctl/src/policies.rs: a table of URI, Mutating (yes/no),
#       Context aware, the first 12 hex digits of the SHA-256, Size
#   kwctl inspect --output yaml URI|FILE
#       crates/kwctl/src/inspect.rs: the metadata as YAML (serde, camelCase);
#       signatures only with --show-signatures; a registry:// URI is looked up
#       in the store (crates/kwctl/src/utils.rs wasm_path)
#   kwctl run --sources-path --request-path FILE [--settings-json JSON] URI|CRD.yaml
#       crates/kwctl/cli-docs.md "kwctl run"; crates/kwctl/src/command/run/
#       local_data.rs pulls every URI with the sources; crates/kwctl/src/
#       config/policy_definition.rs reads module, mode, mutating and settings
#       of a (Cluster)AdmissionPolicy; the AdmissionResponse goes to stdout,
#       logs to stderr
#   kwctl state: XDG_CONFIG_HOME, XDG_CACHE_HOME, XDG_DATA_HOME
#       crates/policy-fetcher/src/store/mod.rs (DEFAULT_ROOT =
#       ProjectDirs::from("io.kubewarden", "", "kubewarden"), store under its
#       cache_dir); crates/kwctl/tests/common/mod.rs isolates kwctl this way
#   DOCKER_CONFIG, NO_PROXY
#       crates/kwctl/src/config/sources.rs and crates/policy-fetcher/src/
#       registry/mod.rs (Registry::auth: docker_credential, anonymous when no
#       credential); crates/policy-fetcher/src/proxy.rs (HTTP(S)_PROXY and
#       NO_PROXY, upper case first)
#   policy-server --addr --port --readiness-probe-port --policies
#       --policies-download-dir --sources-path --sigstore-cache-dir
#       --ignore-kubernetes-connection-failure --workers --log-no-color
#       crates/policy-server/src/cli.rs and cli-docs.md; DEVELOPMENT.md runs
#       it outside a cluster with --ignore-kubernetes-connection-failure
#       (crates/policy-server/src/lib.rs: without it, no Kubernetes
#       connection is fatal)
#   policies.yml: id -> module, policyMode, allowedToMutate, settings
#       crates/policy-server/src/config.rs (PolicyOrPolicyGroup, camelCase;
#       allowedToMutate defaults to false), policies.yml.example
#   GET /readiness on --readiness-probe-port; POST /validate/<policy id>
#       crates/policy-server/src/lib.rs (the readiness server starts after the
#       API server, and both after every policy was downloaded and compiled);
#       crates/policy-server/src/api/handlers.rs (JSON body, Content-Type
#       application/json, as tests/integration_test.rs sends it)
#   AdmissionReview response: apiVersion, kind, response.{uid, allowed,
#       patchType, patch (base64 JSONPatch), status.message, warnings}
#       crates/policy-server/src/api/admission_review.rs, crates/policy-
#       evaluator/src/admission_response.rs (json_patch::diff of the request's
#       object and the mutated object) and admission_response_handler.rs
#       (monitor mode: allowed, patch dropped, warnings kept; protect mode with
#       allowedToMutate false: a patch becomes a rejection)
#   docker-registry serve CONFIG.yml
#       Debian bookworm docker-registry 2.8.2+ds1 (github.com/docker/
#       distribution): `docker-registry serve <config>`, its
#       /etc/docker/registry/config.yml; REGISTRY_* environment variables
#       override the configuration file, so they are cleared; GET /v2/ answers
#       200 once it listens

# ---------------------------------------------------------------------------
# Tools and skips

# Prints the path of an OCI registry binary (distribution), or nothing:
# OCI_REGISTRY_BIN when set, else docker-registry, else registry.
registry_bin() {
  local candidate path
  local -a candidates=(docker-registry registry)
  if [[ -n ${OCI_REGISTRY_BIN:-} ]]; then
    candidates=("$OCI_REGISTRY_BIN")
  fi
  for candidate in "${candidates[@]}"; do
    path=$(command -v "$candidate" 2>/dev/null) || continue
    # `registry` is a common name: accept only distribution's
    # (`docker-registry --version`: "... github.com/docker/distribution 2.8.2+ds1").
    if "$path" --version 2>/dev/null | grep -q 'distribution'; then
      printf '%s\n' "$path"
      return 0
    fi
  done
  return 0
}

# Prints, one a line, each of the named tools that is missing, with a hint.
missing_tools() {
  local tool
  for tool in "$@"; do
    case $tool in
      kwctl)
        command -v "$KWCTL" >/dev/null 2>&1 ||
          echo "kwctl ('$KWCTL' is not installed: see https://docs.kubewarden.io/howtos/install-kwctl, or set KWCTL)" ;;
      policy-server)
        command -v "$POLICY_SERVER" >/dev/null 2>&1 ||
          echo "policy-server ('$POLICY_SERVER' is not installed: set POLICY_SERVER to its binary)" ;;
      registry)
        [[ -n $(registry_bin) ]] ||
          echo "an OCI registry (apt-get install docker-registry, or put distribution's registry on PATH, or set OCI_REGISTRY_BIN)" ;;
      curl | jq)
        command -v "$tool" >/dev/null 2>&1 || echo "$tool (apt-get install $tool)" ;;
    esac
  done
}

# Skips the current test, with the reason, unless every named tool is
# installed (fails instead with E2E_RELEASE_STRICT=1).
require() {
  local missing
  missing=$(missing_tools "$@" | awk 'NR > 1 { printf "; " } { printf "%s", $0 }')
  if [[ -n $missing ]]; then
    if [[ ${E2E_RELEASE_STRICT:-} == 1 ]]; then
      echo "missing: $missing" >&2
      return 1
    fi
    skip "missing: $missing"
  fi
}

require_policy_wasm() {
  if [[ ! -s $POLICY_WASM ]]; then
    if [[ ${E2E_RELEASE_STRICT:-} == 1 ]]; then
      echo "$POLICY_WASM not found: run make policy.wasm" >&2
      return 1
    fi
    skip "$POLICY_WASM not found: run make policy.wasm (make release-e2e-tests builds it)"
  fi
}

# ---------------------------------------------------------------------------
# Helpers

# The value of an annotation of metadata.yml, without quotes.
metadata_annotation() {
  sed -n "s/^[[:space:]]*${1//./\\.}:[[:space:]]*//p" "$REPO_ROOT/metadata.yml" |
    head -n 1 | sed "s/^[\"']//; s/[\"'][[:space:]]*\$//"
}

# A TCP port of 127.0.0.1 nothing listens on, not handed out before (bounded).
free_port() {
  local port attempt
  touch "$BATS_FILE_TMPDIR/ports"
  for ((attempt = 0; attempt < 100; attempt++)); do
    port=$((20000 + RANDOM % 40000))
    grep -qx "$port" "$BATS_FILE_TMPDIR/ports" && continue
    if ! (exec 9<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port" >>"$BATS_FILE_TMPDIR/ports"
      echo "$port"
      return 0
    fi
  done
  echo "no free port found on 127.0.0.1" >&2
  return 1
}

# Waits until URL answers 2xx, at most TRIES seconds, while PID is alive.
wait_for_url() {
  local url=$1 pid=$2 tries=$3 attempt
  for ((attempt = 0; attempt < tries; attempt++)); do
    if curl --noproxy '*' -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 1
  done
  return 1
}

# Stops the process whose pid is in PIDFILE (TERM, then KILL after 5 s).
stop_process() {
  local pidfile=$1 pid attempt
  [[ -f $pidfile ]] || return 0
  pid=$(<"$pidfile")
  rm -f "$pidfile"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  kill "$pid" 2>/dev/null || return 0
  for ((attempt = 0; attempt < 50; attempt++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

start_registry() {
  local bin dir port
  local -a clear_env=()
  local var
  bin=$(registry_bin)
  dir="$BATS_FILE_TMPDIR/registry"
  port=$(free_port)
  mkdir -p "$dir/storage"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: '$dir/storage'
http:
  addr: 127.0.0.1:$port
EOF
  # The registry reads REGISTRY_* variables as configuration overrides.
  for var in $(compgen -e); do
    if [[ $var == REGISTRY_* ]]; then
      clear_env+=(-u "$var")
    fi
  done
  env "${clear_env[@]}" "$bin" serve "$dir/config.yml" \
    </dev/null >"$BATS_FILE_TMPDIR/logs/registry.log" 2>&1 3>&- &
  echo "$!" >"$BATS_FILE_TMPDIR/registry.pid"
  if ! wait_for_url "http://127.0.0.1:$port/v2/" "$!" 30; then
    echo "the registry ($bin) did not answer on 127.0.0.1:$port within 30 s (or exited); its log:" >&2
    tail -n 30 "$BATS_FILE_TMPDIR/logs/registry.log" >&2
    stop_process "$BATS_FILE_TMPDIR/registry.pid"
    return 1
  fi
  export LOCAL_REGISTRY_PORT=$port
  export OCI_PATH=${OCI_URL#*/}
  export POLICY_URI="registry://127.0.0.1:$port/$OCI_PATH:v$RELEASE_VERSION"
  export SOURCES="$BATS_FILE_TMPDIR/sources.yml"
  printf 'insecure_sources:\n  - "127.0.0.1:%s"\n' "$port" >"$SOURCES"
}

# kwctl with its log (stderr) kept aside, so that `run` captures only stdout.
kw() {
  "$KWCTL" "$@" 2>>"$BATS_TEST_TMPDIR/kwctl.stderr"
}

# After `run`: fails, showing the output and kwctl's log, unless status is 0.
assert_success() {
  if [[ $status -ne 0 ]]; then
    echo "exit status $status; stdout:"
    printf '%s\n' "$output"
    if [[ -s $BATS_TEST_TMPDIR/kwctl.stderr ]]; then
      echo "kwctl stderr (last lines):"
      tail -n 40 "$BATS_TEST_TMPDIR/kwctl.stderr"
    fi
    return 1
  fi
}

# assert_jq JSON FILTER [JQ OPTIONS...]: FILTER must give true.
assert_jq() {
  local json=$1 filter=$2
  shift 2
  if ! jq -e "$@" "$filter" >/dev/null <<<"$json"; then
    echo "not true: $filter"
    printf '%s\n' "$json" | head -c 6000
    echo
    return 1
  fi
}

annotate_module() {
  "$KWCTL" annotate \
    --metadata-path "$REPO_ROOT/metadata.yml" \
    --usage-path "$REPO_ROOT/README.md" \
    --output-path "$ANNOTATED.partial" \
    "$POLICY_WASM" && mv "$ANNOTATED.partial" "$ANNOTATED"
}

ensure_annotated() {
  [[ -s $ANNOTATED ]] && return 0
  annotate_module >>"$BATS_FILE_TMPDIR/logs/kwctl.log" 2>&1 || {
    echo "kwctl annotate failed:"
    tail -n 40 "$BATS_FILE_TMPDIR/logs/kwctl.log"
    return 1
  }
}

ensure_pushed() {
  ensure_annotated
  [[ -s $BATS_FILE_TMPDIR/pushed ]] && return 0
  "$KWCTL" push --output json --sources-path "$SOURCES" "$ANNOTATED" "$POLICY_URI" \
    >"$BATS_FILE_TMPDIR/pushed.partial" 2>>"$BATS_FILE_TMPDIR/logs/kwctl.log" || {
    echo "kwctl push failed:"
    tail -n 40 "$BATS_FILE_TMPDIR/logs/kwctl.log"
    return 1
  }
  mv "$BATS_FILE_TMPDIR/pushed.partial" "$BATS_FILE_TMPDIR/pushed"
}

ensure_pulled() {
  ensure_pushed
  "$KWCTL" pull --sources-path "$SOURCES" "$POLICY_URI" \
    >>"$BATS_FILE_TMPDIR/logs/kwctl.log" 2>&1 || {
    echo "kwctl pull failed:"
    tail -n 40 "$BATS_FILE_TMPDIR/logs/kwctl.log"
    return 1
  }
}

# Starts policy-server once for the whole file (its pid in policy-server.pid,
# its API port in policy-server.port); later calls reuse it.
ensure_policy_server() {
  local dir="$BATS_FILE_TMPDIR/policy-server" pidfile="$BATS_FILE_TMPDIR/policy-server.pid"
  local port ready_port pid
  if [[ -f $pidfile ]] && kill -0 "$(<"$pidfile")" 2>/dev/null; then
    return 0
  fi
  # Failed in an earlier test: fail at once rather than wait 60 s again.
  if [[ -f $BATS_FILE_TMPDIR/policy-server.failed ]]; then
    echo "policy-server failed to start in an earlier test; its log:"
    tail -n 60 "$BATS_FILE_TMPDIR/logs/policy-server.log"
    return 1
  fi
  ensure_pushed
  port=$(free_port)
  ready_port=$(free_port)
  mkdir -p "$dir/downloads" "$dir/sigstore"
  sed "s#@MODULE@#$POLICY_URI#g" "$REPO_ROOT/test_data/release/policies.yml" >"$dir/policies.yml"
  # KUBECONFIG names a file that does not exist: no cluster, whatever the
  # user's configuration, and --ignore-kubernetes-connection-failure lets
  # policy-server run without one (this policy is not context aware).
  KUBECONFIG="$dir/no-kubeconfig" "$POLICY_SERVER" \
    --addr 127.0.0.1 \
    --port "$port" \
    --readiness-probe-port "$ready_port" \
    --policies "$dir/policies.yml" \
    --policies-download-dir "$dir/downloads" \
    --sources-path "$SOURCES" \
    --sigstore-cache-dir "$dir/sigstore" \
    --ignore-kubernetes-connection-failure \
    --workers 2 \
    --log-no-color \
    </dev/null >"$BATS_FILE_TMPDIR/logs/policy-server.log" 2>&1 3>&- &
  pid=$!
  echo "$pid" >"$pidfile"
  if ! wait_for_url "http://127.0.0.1:$ready_port/readiness" "$pid" 60; then
    touch "$BATS_FILE_TMPDIR/policy-server.failed"
    if kill -0 "$pid" 2>/dev/null; then
      echo "policy-server did not become ready on 127.0.0.1:$ready_port within 60 s; its log:"
    else
      echo "policy-server exited before it became ready; its log:"
    fi
    tail -n 60 "$BATS_FILE_TMPDIR/logs/policy-server.log"
    stop_process "$pidfile"
    return 1
  fi
  echo "$port" >"$BATS_FILE_TMPDIR/policy-server.port"
}

# POSTs the fixture, wrapped in an AdmissionReview, to /validate/POLICY_ID.
# The response body is left in $BATS_TEST_TMPDIR/review.json; prints the
# HTTP status code.
post_review() {
  local port
  port=$(<"$BATS_FILE_TMPDIR/policy-server.port")
  jq '{apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request: .}' \
    "$FIXTURE" >"$BATS_TEST_TMPDIR/admission-review.json"
  curl --noproxy '*' -sS --max-time 30 \
    -H 'Content-Type: application/json' \
    --data-binary "@$BATS_TEST_TMPDIR/admission-review.json" \
    -o "$BATS_TEST_TMPDIR/review.json" -w '%{http_code}' \
    "http://127.0.0.1:$port/validate/$1"
}

# After `run post_review`: checks that policy-server answered 200 with an
# AdmissionReview for the fixture's uid, and sets `response` to its
# AdmissionResponse.
load_review_response() {
  local review
  assert_success
  review=$(<"$BATS_TEST_TMPDIR/review.json")
  if [[ $output != 200 ]]; then
    echo "HTTP status $output; body:"
    printf '%s\n' "$review"
    return 1
  fi
  assert_jq "$review" '.apiVersion == "admission.k8s.io/v1" and .kind == "AdmissionReview"'
  assert_jq "$review" '.response.uid == $uid' --arg uid "$(jq -r .uid "$FIXTURE")"
  response=$(jq -c .response <<<"$review")
}

# The AdmissionResponse RESPONSE (kwctl run's output or policy-server's
# .response) converts istio-proxy of test_data/istio-injected-deployment.json
# into a native sidecar, and changes nothing else of the containers.
assert_istio_proxy_converted() {
  local response=$1 operations patched
  assert_jq "$response" '.allowed == true'
  assert_jq "$response" '.patchType == "JSONPatch"'
  assert_jq "$response" 'any(.warnings[]?; startswith("istio-proxy:") and contains("native sidecar"))'
  operations=$(jq -c '.patch | @base64d | fromjson' <<<"$response")
  # istio-proxy is added under the pod template's initContainers, restartPolicy Always.
  assert_jq "$operations" 'any(.[];
      (.op == "add" or .op == "replace")
      and (.path | startswith("/spec/template/spec/initContainers"))
      and any(.value | .. | objects; .name? == "istio-proxy" and .restartPolicy? == "Always"))'
  # The patch applied to the request's object gives the native-sidecar pod.
  patched=$(jq -c .object "$FIXTURE" |
    jq -c --argjson patch "$operations" "$(cat "$REPO_ROOT/test_data/json-patch.jq") apply_jsonpatch(\$patch)")
  assert_jq "$patched" '.spec.template.spec | (.initContainers | map(.name)) == ["istio-init", "istio-proxy"]
      and (.containers | map(.name)) == ["checkout"]'
  assert_jq "$patched" '.spec.template.spec.initContainers[1]
      | .restartPolicy == "Always" and .startupProbe.httpGet.path == "/healthz/ready"'
  assert_jq "$patched" '($request[0].object) as $object
      | .metadata == $object.metadata
      and .spec.template.metadata == $object.spec.template.metadata
      and .spec.template.spec.initContainers[0] == $object.spec.template.spec.initContainers[0]
      and .spec.template.spec.containers[0] == $object.spec.template.spec.containers[0]
      and (.spec.template.spec.initContainers[1] | del(.restartPolicy, .startupProbe))
          == $object.spec.template.spec.containers[1]' --slurpfile request "$FIXTURE"
}

# The AdmissionResponse RESPONSE rejects the legacy istio-proxy, with no patch.
assert_istio_proxy_rejected() {
  local response=$1
  assert_jq "$response" '.allowed == false and .patch == null and .patchType == null'
  assert_jq "$response" '.status.message | contains("istio-proxy") and contains("restartPolicy: Always")'
}

# ---------------------------------------------------------------------------

setup_file() {
  if [[ -z ${BATS_FILE_TMPDIR:-} ]]; then
    echo "e2e-release.bats needs bats 1.4 or later (BATS_FILE_TMPDIR)" >&2
    return 1
  fi
  # The tests share one registry, store and policy-server: run them in order.
  export BATS_NO_PARALLELIZE_WITHIN_FILE=true
  export REPO_ROOT="$BATS_TEST_DIRNAME"
  export KWCTL="${KWCTL:-kwctl}"
  export POLICY_SERVER="${POLICY_SERVER:-policy-server}"
  export POLICY_WASM="${POLICY_WASM:-$REPO_ROOT/policy.wasm}"
  export FIXTURE="$REPO_ROOT/test_data/istio-injected-deployment.json"
  export ANNOTATED="$BATS_FILE_TMPDIR/annotated-policy.wasm"
  mkdir -p "$BATS_FILE_TMPDIR/logs"

  # kwctl's store, sources.yaml, verification config and Sigstore data, and
  # the wasmtime cache, all under the temporary directory.
  export XDG_CONFIG_HOME="$BATS_FILE_TMPDIR/xdg/config"
  export XDG_CACHE_HOME="$BATS_FILE_TMPDIR/xdg/cache"
  export XDG_DATA_HOME="$BATS_FILE_TMPDIR/xdg/data"
  mkdir -p "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME" "$XDG_DATA_HOME"
  # No credentials or credential helpers from the user's Docker configuration.
  export DOCKER_CONFIG="$BATS_FILE_TMPDIR/docker"
  mkdir -p "$DOCKER_CONFIG"
  printf '{"auths": {}}\n' >"$DOCKER_CONFIG/config.json"
  # Loopback never goes through a proxy.
  export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
  export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

  RELEASE_VERSION=$(metadata_annotation io.kubewarden.policy.version)
  OCI_URL=$(metadata_annotation io.kubewarden.policy.ociUrl)
  export RELEASE_VERSION OCI_URL
  # Where the release goes, and what examples/*.yaml deploy.
  export RELEASE_URI="registry://$OCI_URL:v$RELEASE_VERSION"

  # Without these tools no test uses the registry: do not start it.
  if [[ -n $(missing_tools kwctl registry curl jq) ]]; then
    return 0
  fi
  if [[ -z $RELEASE_VERSION || -z $OCI_URL ]]; then
    echo "metadata.yml lacks io.kubewarden.policy.version or io.kubewarden.policy.ociUrl" >&2
    return 1
  fi
  start_registry
}

teardown_file() {
  stop_process "$BATS_FILE_TMPDIR/policy-server.pid"
  stop_process "$BATS_FILE_TMPDIR/registry.pid"
}

# ---------------------------------------------------------------------------
# kwctl

@test "kwctl annotate: embeds metadata.yml and README.md in policy.wasm" {
  require kwctl
  require_policy_wasm
  run annotate_module
  assert_success

  run kw inspect --output yaml "$ANNOTATED"
  assert_success
  grep -qx 'protocolVersion: v1' <<<"$output"
  grep -qx 'mutating: true' <<<"$output"
  grep -qx 'executionMode: kubewarden-wapc' <<<"$output"
  grep -qxF "  io.kubewarden.policy.title: $(metadata_annotation io.kubewarden.policy.title)" <<<"$output"
  grep -qxE "  io\.kubewarden\.policy\.version: [\"']?${RELEASE_VERSION//./\\.}[\"']?" <<<"$output"
  # README.md is the usage: its title line is in the embedded annotation.
  grep -qF "$(head -n 1 "$REPO_ROOT/README.md")" <<<"$output"
}

@test "kwctl push: publishes the annotated module to the local registry" {
  require kwctl registry curl jq
  require_policy_wasm
  ensure_annotated
  run kw push --output json --sources-path "$SOURCES" "$ANNOTATED" "$POLICY_URI"
  assert_success
  printf '%s\n' "$output" >"$BATS_FILE_TMPDIR/pushed"
  assert_jq "$output" '.immutable_ref | startswith($prefix)' \
    --arg prefix "127.0.0.1:$LOCAL_REGISTRY_PORT/$OCI_PATH@sha256:"
  immutable_ref=$(jq -r .immutable_ref <<<"$output")

  # What the registry now serves under the release tag.
  run curl --noproxy '*' -fsS --max-time 10 -D "$BATS_TEST_TMPDIR/headers" \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$LOCAL_REGISTRY_PORT/v2/$OCI_PATH/manifests/v$RELEASE_VERSION"
  assert_success
  manifest=$output
  digest=$(tr -d '\r' <"$BATS_TEST_TMPDIR/headers" |
    awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }')
  [[ -n $digest && $immutable_ref == *"@$digest" ]]
  assert_jq "$manifest" '.layers | length == 1
      and .[0].mediaType == "application/vnd.wasm.content.layer.v1+wasm"
      and .[0].digest == $layer' --arg layer "sha256:$(sha256sum "$ANNOTATED" | cut -d ' ' -f 1)"
  assert_jq "$manifest" '.annotations["io.kubewarden.policy.title"] == $title' \
    --arg title "$(metadata_annotation io.kubewarden.policy.title)"
  assert_jq "$manifest" '.annotations["io.kubewarden.policy.version"] == $version' \
    --arg version "$RELEASE_VERSION"
  assert_jq "$manifest" '.annotations["org.opencontainers.image.source"] == $source' \
    --arg source "$(metadata_annotation io.kubewarden.policy.source)"
  # The usage (README.md) spans several lines: kwctl leaves it out of the manifest.
  assert_jq "$manifest" '.annotations | has("io.kubewarden.policy.usage") | not'
}

@test "kwctl pull: fetches the pushed module byte for byte" {
  require kwctl registry curl jq
  require_policy_wasm
  ensure_pushed
  run kw pull --sources-path "$SOURCES" "$POLICY_URI"
  assert_success
  run kw pull --sources-path "$SOURCES" --output-path "$BATS_TEST_TMPDIR/pulled.wasm" "$POLICY_URI"
  assert_success
  cmp "$ANNOTATED" "$BATS_TEST_TMPDIR/pulled.wasm"
}

@test "kwctl policies: lists the pulled module as mutating, with its digest" {
  require kwctl registry curl jq
  require_policy_wasm
  ensure_pulled
  run kw policies
  assert_success
  row=$(grep -F " $POLICY_URI " <<<"$output") || {
    echo "$POLICY_URI is not listed:"
    printf '%s\n' "$output"
    false
  }
  [[ $row =~ \|[[:space:]]*yes[[:space:]]*\|[[:space:]]*no[[:space:]]*\| ]]
  [[ $row == *" $(sha256sum "$ANNOTATED" | cut -c 1-12) "* ]]
}

@test "kwctl inspect: shows the metadata of the module pulled from the registry" {
  require kwctl registry curl jq
  require_policy_wasm
  ensure_pulled
  run kw inspect --output yaml "$POLICY_URI"
  assert_success
  from_registry=$output
  grep -qx 'mutating: true' <<<"$from_registry"
  grep -qx 'executionMode: kubewarden-wapc' <<<"$from_registry"
  grep -qxF "  io.kubewarden.policy.title: $(metadata_annotation io.kubewarden.policy.title)" <<<"$from_registry"
  run kw inspect --output yaml "$ANNOTATED"
  assert_success
  [[ $from_registry == "$output" ]]
}

@test "kwctl run registry://: converts istio-proxy into a native sidecar" {
  require kwctl registry curl jq
  require_policy_wasm
  ensure_pushed
  # An empty store: kwctl run fetches the module from the registry itself.
  export XDG_CACHE_HOME="$BATS_TEST_TMPDIR/cache"
  run kw run --sources-path "$SOURCES" --request-path "$FIXTURE" "$POLICY_URI"
  assert_success
  assert_istio_proxy_converted "$output"
}

@test "kwctl run registry://: legacySidecars reject refuses the legacy istio-proxy" {
  require kwctl registry curl jq
  require_policy_wasm
  ensure_pushed
  export XDG_CACHE_HOME="$BATS_TEST_TMPDIR/cache"
  run kw run --sources-path "$SOURCES" --request-path "$FIXTURE" \
    --settings-json '{"legacySidecars": "reject"}' "$POLICY_URI"
  assert_success
  assert_istio_proxy_rejected "$output"
}

@test "kwctl run: every examples/*.yaml deploys the release and runs it" {
  require kwctl registry curl jq
  require_policy_wasm
  ensure_pushed
  local example copy
  for example in "$REPO_ROOT"/examples/*.yaml; do
    # Each example points at the release being made...
    modules=$(sed -n 's/^[[:space:]]*module:[[:space:]]*//p' "$example" | sort -u)
    if [[ $modules != "$RELEASE_URI" ]]; then
      echo "$example: module is '$modules', expected '$RELEASE_URI'"
      false
    fi
    # ...which is the module in the local registry, under another host.
    copy="$BATS_TEST_TMPDIR/$(basename "$example")"
    sed "s#${RELEASE_URI//./\\.}#$POLICY_URI#" "$example" >"$copy"
    run kw run --sources-path "$SOURCES" --request-path "$FIXTURE" "$copy"
    assert_success
    [[ -n $output ]]
    # One AdmissionResponse a policy; the settings were accepted.
    while IFS= read -r response; do
      assert_jq "$response" '.allowed | type == "boolean"'
      if grep -qE '^[[:space:]]*mode:[[:space:]]*monitor' "$example"; then
        assert_jq "$response" '.allowed == true and .patch == null'
      fi
    done <<<"$output"
  done
}

# ---------------------------------------------------------------------------
# policy-server

@test "policy-server: downloads the module from registry:// and becomes ready" {
  require kwctl policy-server registry curl jq
  require_policy_wasm
  ensure_policy_server
  grep -q . "$BATS_FILE_TMPDIR/policy-server.port"
}

@test "policy-server /validate: converts istio-proxy into a native sidecar" {
  require kwctl policy-server registry curl jq
  require_policy_wasm
  ensure_policy_server
  run post_review sidecar-lifecycle
  load_review_response
  assert_istio_proxy_converted "$response"
}

@test "policy-server /validate: legacySidecars reject refuses the legacy istio-proxy" {
  require kwctl policy-server registry curl jq
  require_policy_wasm
  ensure_policy_server
  run post_review sidecar-lifecycle-reject
  load_review_response
  assert_istio_proxy_rejected "$response"
}

@test "policy-server /validate: monitor mode accepts unchanged and keeps the warnings" {
  require kwctl policy-server registry curl jq
  require_policy_wasm
  ensure_policy_server
  run post_review sidecar-lifecycle-monitor
  load_review_response
  assert_jq "$response" '.allowed == true and .patch == null and .patchType == null'
  assert_jq "$response" 'any(.warnings[]?; startswith("istio-proxy:") and contains("native sidecar"))'
}

@test "policy-server /validate: validate-only settings reject without attempting a mutation" {
  require kwctl policy-server registry curl jq
  require_policy_wasm
  ensure_policy_server
  run post_review sidecar-lifecycle-validate-only
  load_review_response
  assert_istio_proxy_rejected "$response"
  # The policy's own message, not policy-server's "attempted to mutate".
  assert_jq "$response" '.status.message | contains("attempted to mutate") | not'
}
