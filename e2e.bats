#!/usr/bin/env bats
#
# End-to-end tests: the annotated policy module run by the real kwctl
# (https://github.com/kubewarden/kwctl) on the AdmissionRequests of test_data/.
#
#   make e2e-tests        # builds annotated-policy.wasm, then runs bats e2e.bats
#
# Without kwctl on PATH, or without annotated-policy.wasm, every test is
# reported as skipped, with the reason. jq is required.
#
# What kwctl prints
# -----------------
# `kwctl run` prints the AdmissionResponse on stdout, one JSON line, and exits
# 0 whether the request is accepted or rejected:
#
#   {"uid":..,"allowed":true|false,["patchType":"JSONPatch","patch":"<base64>"],
#    ["status":{"message":..}],"auditAnnotations":..,"warnings":null|[..]}
#
# Its logs go to stderr, which run_policy keeps out of $output. Invalid
# settings make it exit non-zero with "Error: Provided settings are not valid:
# <message>" on stderr.
#
# How mutations are checked
# -------------------------
# kwctl computes the patch with json_patch::diff(object, mutated_object). That
# diff compares arrays element by element, so moving istio-proxy from
# containers to initContainers may come out as field-by-field replacements of
# other containers: the exact operations are an implementation detail of the
# json-patch crate. The tests therefore apply the patch to the request's
# object (apply_jsonpatch, RFC 6902 written in jq, below) and check the
# resulting object: container order, restartPolicy, probes, grace period, and
# that nothing else changed (only_policy_fields_changed).

# ---------------------------------------------------------------------------
# jq library, prepended to the jq programs of the helpers
# ---------------------------------------------------------------------------

JQ_LIB=$(
	cat "${BATS_TEST_DIRNAME:-.}/test_data/json-patch.jq"
	cat <<'JQ'
# The pod spec of a Pod, or of the pod template of a workload.
def podspec:
  if .kind == "Pod" then .spec
  elif .kind == "CronJob" then .spec.jobTemplate.spec.template.spec
  else .spec.template.spec end;

def all_containers: (podspec.initContainers // []) + (podspec.containers // []);
def init_container($name): podspec.initContainers[]? | select(.name == $name);
def container($name): podspec.containers[]? | select(.name == $name);
def native_sidecar($name): init_container($name) | .restartPolicy == "Always";

def container_names:
  {initContainers: ((podspec.initContainers // []) | map(.name)),
   containers: ((podspec.containers // []) | map(.name))};

# A container without the fields the policy may set or remove.
def kept_fields:
  del(.restartPolicy, .startupProbe)
  | if (.lifecycle | type) == "object" then
      .lifecycle |= del(.type) | if .lifecycle == {} then del(.lifecycle) else . end
    else . end;

# Paths of the sidecar.istio.io/status records the policy keeps true: on the
# pod (template) metadata, and for a CronJob also on its job template's.
def istio_status_paths:
  (if .kind == "Pod" then ["metadata"]
   elif .kind == "CronJob" then ["spec", "jobTemplate", "spec", "template", "metadata"]
   else ["spec", "template", "metadata"] end) as $pod
  | ([$pod] + (if .kind == "CronJob" then [["spec", "jobTemplate", "metadata"]] else [] end))
  | map(. + ["annotations", "sidecar.istio.io/status"]);

# True when the record $now is the record $was with some names of its
# "containers" moved to the end of its "initContainers" (absent or null lists
# count as empty), every other member kept, written as compact JSON.
def istio_record_moved($was; $now):
  ($was | try fromjson catch null) as $b
  | ($now | try fromjson catch null) as $a
  | if ($b | type) != "object" or ($a | type) != "object" then false
    else
      ($a.containers // []) as $kept
      | [($b.containers // [])[] | select(. as $n | $kept | index([$n]) | not)] as $moved
      | ($b | del(.containers, .initContainers)) == ($a | del(.containers, .initContainers))
        and $kept == (($b.containers // []) - $moved)
        and ($a.initContainers // []) == (($b.initContainers // []) + $moved)
        and ($now | test("\\n|\": |, \"") | not)
    end;

# Input: [object before, object after]. The object after, with each record
# of istio_status_paths put back to its value before when it changed only as
# istio_record_moved allows.
def istio_records_restored:
  .[0] as $before
  | reduce ($before | istio_status_paths[]) as $p (.[1];
      ($before | getpath($p)) as $was | getpath($p) as $now
      | if ($was | type) == "string" and ($now | type) == "string" and $was != $now
          and istio_record_moved($was; $now)
        then setpath($p; $was) else . end);

# Input: [object before, object after]. True when they differ only where the
# policy may change them: which list each container is in, and in what order
# (every container keeps every field but restartPolicy, startupProbe and
# lifecycle.type), terminationGracePeriodSeconds, and Istio's status records
# (istio_record_moved).
def only_policy_fields_changed:
  .[0] as $before | istio_records_restored as $after
  | ($before | del(podspec.initContainers, podspec.containers, podspec.terminationGracePeriodSeconds))
      == ($after | del(podspec.initContainers, podspec.containers, podspec.terminationGracePeriodSeconds))
  and ([$before | all_containers[] | .name] | sort) == ([$after | all_containers[] | .name] | sort)
  and all($before | all_containers[]; . as $c
        | [$after | all_containers[] | select(.name == $c.name) | kept_fields] == [$c | kept_fields]);

# A startupProbe derived from the readinessProbe: its handler, timeoutSeconds
# and initialDelaySeconds, a period no slower than the readiness period,
# successThreshold 1, failureThreshold covering $window seconds.
def derived_startup_probe($window):
  .startupProbe as $s | .readinessProbe as $r
  | $s != null and $r != null
  and $s.successThreshold == 1
  and ($s | del(.successThreshold, .failureThreshold, .periodSeconds))
      == ($r | with_entries(select(.value != null and (.key
            | IN("httpGet", "tcpSocket", "exec", "grpc", "timeoutSeconds", "initialDelaySeconds")))))
  and $s.periodSeconds <= ($r.periodSeconds // 10)
  and $s.periodSeconds * $s.failureThreshold >= $window
  and $s.failureThreshold >= ($r.failureThreshold // 3);
JQ
)

# ---------------------------------------------------------------------------
# Set-up and helpers
# ---------------------------------------------------------------------------

setup() {
	command -v kwctl >/dev/null 2>&1 ||
		skip "kwctl is not installed: the e2e tests need the real kwctl (https://github.com/kubewarden/kwctl)"
	cd "$BATS_TEST_DIRNAME"
	[ -f annotated-policy.wasm ] ||
		skip "annotated-policy.wasm not found: run make annotated-policy.wasm first"
	command -v jq >/dev/null 2>&1 || {
		echo "jq is not installed: e2e.bats needs it to read kwctl's answers" >&2
		return 1
	}
	POLICY_URI="file://$PWD/annotated-policy.wasm"
	PATCH="$BATS_TEST_TMPDIR/patch.json"
	PATCHED="$BATS_TEST_TMPDIR/patched.json"
}

# fail LINE...: prints the lines and the last kwctl command, then fails.
fail() {
	printf '%s\n' "$@" >&2
	if [ -n "${LAST_RUN:-}" ]; then
		printf 'after: %s\n' "$LAST_RUN" >&2
		if [ -s "$BATS_TEST_TMPDIR/kwctl.stderr" ]; then
			echo "kwctl stderr (last lines):" >&2
			tail -n 15 "$BATS_TEST_TMPDIR/kwctl.stderr" >&2
		fi
	fi
	return 1
}

# Checks what `run kwctl ...` left in $status and $output: exit status 0 and
# one JSON AdmissionResponse on stdout, kept in $RESPONSE.
check_kwctl_answer() {
	[ "$status" -eq 0 ] || fail "kwctl exited with status $status"
	{ [ "${#lines[@]}" -eq 1 ] && jq -e 'type == "object" and (.allowed | type) == "boolean"' <<<"$output" >/dev/null 2>&1; } ||
		fail "kwctl did not print one AdmissionResponse on stdout:" "$output"
	RESPONSE="$output"
}

# run_policy REQUEST [SETTINGS_JSON]: runs annotated-policy.wasm on REQUEST (a
# bare AdmissionRequest) with the settings (default {}); the AdmissionResponse
# ends up in $output and $RESPONSE.
run_policy() {
	REQUEST="$1"
	local settings="${2:-}"
	[ -n "$settings" ] || settings='{}'
	LAST_RUN="kwctl run --request-path $REQUEST --settings-json '$settings' annotated-policy.wasm"
	run bash -c 'kwctl run --request-path "$1" --settings-json "$2" annotated-policy.wasm 2>"$3"' \
		kwctl "$REQUEST" "$settings" "$BATS_TEST_TMPDIR/kwctl.stderr"
	check_kwctl_answer
}

# use_example EXAMPLE [SED_ARGS...]: copies examples/EXAMPLE to $MANIFEST, in
# $BATS_TEST_TMPDIR, with its module pointing at the local
# annotated-policy.wasm (the examples name the published OCI artifact), and the
# extra sed arguments (e.g. -e 's/^(  mode:).*/\1 protect/') applied. Skips
# the test when the example does not exist.
use_example() {
	local example="examples/$1"
	shift
	[ -f "$example" ] || skip "$example not found"
	MANIFEST="$BATS_TEST_TMPDIR/$(basename "$example")"
	sed -E -e "s#^([[:space:]]*module:).*#\\1 $POLICY_URI#" "$@" "$example" >"$MANIFEST"
	grep -q "module: $POLICY_URI\$" "$MANIFEST" || fail "$example has no spec.module line to rewrite"
}

# run_manifest REQUEST: runs the policy manifest $MANIFEST (a
# ClusterAdmissionPolicy or AdmissionPolicy: its mode, mutating and settings
# apply) on REQUEST; the AdmissionResponse ends up in $output and $RESPONSE.
run_manifest() {
	REQUEST="$1"
	LAST_RUN="kwctl run --request-path $REQUEST $MANIFEST"
	run bash -c 'kwctl run --request-path "$1" "$2" 2>"$3"' \
		kwctl "$REQUEST" "$MANIFEST" "$BATS_TEST_TMPDIR/kwctl.stderr"
	check_kwctl_answer
}

# The response with its patch decoded, for failure messages.
show_response() {
	jq -c 'if (.patch | type) == "string" then .patch |= (@base64d | fromjson) else . end' <<<"$RESPONSE"
}

# assert_response JQ_CONDITION [JQ_OPTIONS...]: the AdmissionResponse
# satisfies the condition.
assert_response() {
	local condition="$1"
	shift
	jq -e "$@" "$condition" <<<"$RESPONSE" >/dev/null ||
		fail "the AdmissionResponse does not satisfy: $condition $*" "response: $(show_response)"
}

assert_accepted_unchanged() {
	assert_response '.allowed == true and .patch == null and .patchType == null'
}

# assert_rejected TEXT...: rejected, without a patch, with a message that
# contains every TEXT.
assert_rejected() {
	assert_response '.allowed == false and .patch == null and .patchType == null'
	local text
	for text in "$@"; do
		assert_response '(.status.message // "") | contains($text)' --arg text "$text"
	done
}

# assert_warning TEXT...: one of the warnings contains every TEXT.
assert_warning() {
	local texts
	texts=$(printf '%s\n' "$@" | jq -R . | jq -s -c .)
	assert_response 'any((.warnings // [])[]; . as $w | all($texts[]; . as $t | $w | contains($t)))' \
		--argjson texts "$texts"
}

assert_no_warnings() {
	assert_response '(.warnings // []) == []'
}

# assert_no_warning_containing TEXT: no warning contains TEXT.
assert_no_warning_containing() {
	assert_response 'all((.warnings // [])[]; contains($text) | not)' --arg text "$1"
}

# assert_mutated: accepted with a non-empty JSON Patch that applies to the
# request's object and changes nothing but the container lists (every
# container keeping its other fields) and the grace period. The patch is left
# in $PATCH, the patched object in $PATCHED.
assert_mutated() {
	assert_response '.allowed == true and .patchType == "JSONPatch" and (.patch | type) == "string"'
	jq -r '.patch | @base64d' <<<"$RESPONSE" >"$PATCH"
	jq -e 'type == "array" and length > 0' "$PATCH" >/dev/null ||
		fail "the patch is not a non-empty JSON Patch: $(cat "$PATCH")"
	jq -c --slurpfile patch "$PATCH" "$JQ_LIB"' .object | apply_jsonpatch($patch[0])' "$REQUEST" >"$PATCHED" ||
		fail "the patch does not apply to the object of $REQUEST: $(cat "$PATCH")"
	jq -e -n --slurpfile request "$REQUEST" --slurpfile after "$PATCHED" \
		"$JQ_LIB"' [$request[0].object, $after[0]] | only_policy_fields_changed' >/dev/null ||
		fail "the patch changes more than the container lists and the grace period: $(cat "$PATCH")"
}

# assert_patched JQ_CONDITION [JQ_OPTIONS...]: the patched object satisfies
# the condition (the functions of the jq library above can be used).
assert_patched() {
	local condition="$1"
	shift
	jq -e "$@" "$JQ_LIB $condition" "$PATCHED" >/dev/null ||
		fail "the patched object does not satisfy: $condition $*" \
			"its containers: $(jq -c "$JQ_LIB"' container_names' "$PATCHED")"
}

# assert_container_order INIT_CONTAINERS CONTAINERS: the names, as JSON
# arrays, of the init containers and containers of the patched object.
assert_container_order() {
	local expected actual
	expected=$(jq -c -n --argjson i "$1" --argjson c "$2" '{initContainers: $i, containers: $c}')
	actual=$(jq -c "$JQ_LIB"' container_names' "$PATCHED")
	[ "$actual" = "$expected" ] ||
		fail "container order: expected $expected" "                 got      $actual"
}

# assert_all_patch_paths_under POINTER: every operation of the patch is below
# POINTER (the pod spec of the workload kind).
assert_all_patch_paths_under() {
	jq -e --arg prefix "$1/" 'all(.[]; .path | startswith($prefix))' "$PATCH" >/dev/null ||
		fail "the patch touches paths outside $1: $(jq -c 'map(.path)' "$PATCH")"
}

# write_request_with_patched_object FILE: the request of the last run, with
# the patched object as its object.
write_request_with_patched_object() {
	jq --slurpfile object "$PATCHED" '.object = $object[0]' "$REQUEST" >"$1"
}

# Every mode of every setting that could change or refuse something.
EVERY_MODE=(
	'{}'
	'{"legacySidecars":"reject"}'
	'{"legacySidecars":"warn"}'
	'{"legacySidecars":"reject","startupProbe":"require","terminationGracePeriod":{"onViolation":"reject","minSeconds":120,"maxSeconds":120}}'
)

# assert_untouched_in_every_mode REQUEST: accepted, unchanged, without
# warnings, whatever the settings.
assert_untouched_in_every_mode() {
	local settings
	for settings in "${EVERY_MODE[@]}"; do
		run_policy "$1" "$settings"
		assert_accepted_unchanged
		assert_no_warnings
	done
}

# ---------------------------------------------------------------------------
# legacySidecars: convert (default), on every workload kind
# ---------------------------------------------------------------------------

@test "istio-injected Deployment: istio-proxy becomes a native sidecar after istio-init" {
	run_policy test_data/istio-injected-deployment.json
	assert_mutated
	assert_container_order '["istio-init","istio-proxy"]' '["checkout"]'
	assert_patched 'native_sidecar("istio-proxy")'
	assert_patched 'init_container("istio-proxy") | derived_startup_probe(300)'
	# No preStop hooks: 0 + 5 s for 1 sidecar fits in the default 30 s, and an
	# unset grace period stays unset.
	assert_patched 'podspec | has("terminationGracePeriodSeconds") | not'
	# Istio's record now lists istio-proxy as an init container.
	assert_patched '.spec.template.metadata.annotations["sidecar.istio.io/status"] | fromjson
		| .containers == [] and .initContainers == ["istio-init", "istio-proxy"]'
	assert_all_patch_paths_under /spec/template
	assert_warning istio-proxy converted
	assert_warning istio-proxy startupProbe
}

@test "istio-injected Deployment: the converted object is accepted unchanged (idempotence)" {
	run_policy test_data/istio-injected-deployment.json
	assert_mutated
	write_request_with_patched_object "$BATS_TEST_TMPDIR/converted.json"
	run_policy "$BATS_TEST_TMPDIR/converted.json"
	assert_accepted_unchanged
	assert_no_warnings
}

@test "Deployment with unknown fields: the converted istio-proxy keeps them, and resizePolicy" {
	run_policy test_data/deployment-with-unknown-fields.json
	assert_mutated
	assert_container_order '["istio-init","istio-proxy"]' '["app"]'
	assert_patched 'init_container("istio-proxy") | has("x-mesh-tuning") and has("x-vendor-extension") and has("resizePolicy")'
}

@test "istio ingress gateway Deployment: a lone istio-proxy is the main container, accepted unchanged" {
	run_policy test_data/istio-ingress-gateway-deployment.json
	assert_accepted_unchanged
	assert_no_warnings
}

@test "linkerd-injected Pod: linkerd-proxy becomes a native sidecar after linkerd-init" {
	run_policy test_data/linkerd-injected-pod.json
	assert_mutated
	assert_container_order '["linkerd-init","linkerd-proxy"]' '["web"]'
	assert_patched 'native_sidecar("linkerd-proxy")'
	assert_patched 'init_container("linkerd-proxy") | .lifecycle.postStart != null'
	assert_patched 'init_container("linkerd-proxy") | derived_startup_probe(300)'
	assert_all_patch_paths_under /spec
}

@test "Job with cloud-sql-proxy: the proxy becomes a native sidecar, so the Job can complete" {
	run_policy test_data/cloud-sql-proxy-job.json
	assert_mutated
	assert_container_order '["cloud-sql-proxy"]' '["migrate"]'
	assert_patched 'native_sidecar("cloud-sql-proxy")'
	# No readinessProbe to derive a startupProbe from.
	assert_patched 'init_container("cloud-sql-proxy") | has("startupProbe") | not'
	assert_all_patch_paths_under /spec/template/spec
	assert_warning cloud-sql-proxy converted
}

@test "CronJob with vault-agent: converted in the pod template of the job template" {
	run_policy test_data/vault-agent-cronjob.json
	assert_mutated
	# vault-agent-init is not a network-setup container: the sidecar goes first.
	assert_container_order '["vault-agent","vault-agent-init"]' '["report"]'
	assert_patched 'native_sidecar("vault-agent")'
	assert_patched 'init_container("vault-agent-init") | has("restartPolicy") | not'
	assert_all_patch_paths_under /spec/jobTemplate/spec/template/spec
	assert_warning vault-agent converted
}

@test "StatefulSet with fluent-bit: a sidecars image matcher makes it a native sidecar" {
	run_policy test_data/statefulset-with-fluent-bit.json '{"sidecars":[{"image":"cr.fluentbit.io/fluent/fluent-bit:*"}]}'
	assert_mutated
	assert_container_order '["fluent-bit"]' '["postgres"]'
	assert_patched 'native_sidecar("fluent-bit")'
	assert_patched 'init_container("fluent-bit") | derived_startup_probe(300)'
	assert_patched 'podspec.terminationGracePeriodSeconds == 60'
	assert_all_patch_paths_under /spec/template/spec
	assert_warning fluent-bit converted
}

@test "StatefulSet with fluent-bit: without a matcher fluent-bit is not a sidecar" {
	run_policy test_data/statefulset-with-fluent-bit.json
	assert_accepted_unchanged
	assert_no_warnings
}

@test "DaemonSet with otc-container: the OpenTelemetry collector becomes a native sidecar" {
	run_policy test_data/daemonset-with-otel-collector.json
	assert_mutated
	assert_container_order '["otc-container"]' '["node-exporter"]'
	assert_patched 'native_sidecar("otc-container")'
	assert_all_patch_paths_under /spec/template/spec
}

@test "ReplicaSet with daprd: daprd becomes a native sidecar with a derived startupProbe" {
	run_policy test_data/replicaset-with-daprd.json
	assert_mutated
	assert_container_order '["daprd"]' '["orders"]'
	assert_patched 'native_sidecar("daprd")'
	assert_patched 'init_container("daprd") | derived_startup_probe(300)'
	assert_all_patch_paths_under /spec/template/spec
}

@test "ReplicationController with consul-dataplane: converted after consul-connect-inject-init" {
	run_policy test_data/replicationcontroller-with-consul.json
	assert_mutated
	assert_container_order '["consul-connect-inject-init","consul-dataplane"]' '["legacy-api"]'
	assert_patched 'native_sidecar("consul-dataplane")'
	assert_patched 'init_container("consul-connect-inject-init") | has("restartPolicy") | not'
	assert_all_patch_paths_under /spec/template/spec
}

@test "Pod with a native istio-proxy that has a startupProbe: accepted unchanged" {
	run_policy test_data/pod-with-native-sidecar.json
	assert_accepted_unchanged
	assert_no_warnings
}

@test "Deployment UPDATE with a new image: the pod template is converted" {
	run_policy test_data/deployment-update-new-image.json
	assert_mutated
	assert_container_order '["istio-init","istio-proxy"]' '["checkout"]'
	assert_patched 'native_sidecar("istio-proxy")'
	assert_patched 'container("checkout") | .image == "ghcr.io/acme-shop/checkout:v1.5.0"'
}

# ---------------------------------------------------------------------------
# legacySidecars: reject and warn
# ---------------------------------------------------------------------------

@test "istio-injected Deployment, legacySidecars reject: rejected, naming istio-proxy and the fix" {
	run_policy test_data/istio-injected-deployment.json '{"legacySidecars":"reject"}'
	assert_rejected istio-proxy initContainers 'restartPolicy: Always'
}

@test "CronJob with vault-agent, legacySidecars reject: the message names the job template's containers" {
	run_policy test_data/vault-agent-cronjob.json '{"legacySidecars":"reject"}'
	assert_rejected vault-agent spec.jobTemplate.spec.template.spec 'restartPolicy: Always'
}

@test "istio-injected Deployment, legacySidecars warn: accepted unchanged with a warning" {
	run_policy test_data/istio-injected-deployment.json '{"legacySidecars":"warn"}'
	assert_accepted_unchanged
	assert_warning istio-proxy 'restartPolicy: Always'
	assert_no_warning_containing 'never complete'
}

@test "Job-owned Pod with cloud-sql-proxy, legacySidecars warn: the warning says the Job never completes" {
	run_policy test_data/job-owned-pod-with-cloud-sql-proxy.json '{"legacySidecars":"warn"}'
	assert_accepted_unchanged
	assert_warning cloud-sql-proxy 'never complete'
}

@test "Job with cloud-sql-proxy, legacySidecars warn: the warning says the Job never completes" {
	run_policy test_data/cloud-sql-proxy-job.json '{"legacySidecars":"warn"}'
	assert_accepted_unchanged
	assert_warning cloud-sql-proxy 'never complete'
}

@test "Job-owned Pod with cloud-sql-proxy: converted by default" {
	run_policy test_data/job-owned-pod-with-cloud-sql-proxy.json
	assert_mutated
	assert_container_order '["cloud-sql-proxy"]' '["migrate"]'
	assert_patched 'native_sidecar("cloud-sql-proxy")'
}

# ---------------------------------------------------------------------------
# Declaring sidecars: lifecycle.type and the annotation
# ---------------------------------------------------------------------------

@test "Pod with lifecycle.type Sidecar: converted, and every lifecycle.type removed" {
	run_policy test_data/lifecycle-type-sidecar-pod.json
	assert_mutated
	assert_container_order '["log-forwarder"]' '["api"]'
	assert_patched 'native_sidecar("log-forwarder")'
	assert_patched 'all(all_containers[]; .lifecycle.type == null)'
	# A lifecycle left empty is removed; one with a preStop hook stays.
	assert_patched 'init_container("log-forwarder") | has("lifecycle") | not'
	assert_patched 'container("api") | .lifecycle.preStop.exec.command == ["/bin/sh","-c","sleep 5"]'
	assert_patched 'init_container("log-forwarder") | derived_startup_probe(300)'
	assert_warning log-forwarder converted
}

@test "Pod with lifecycle.type Standard on istio-proxy: opted out, accepted unchanged" {
	run_policy test_data/lifecycle-type-standard-pod.json
	assert_accepted_unchanged
	assert_no_warnings
}

@test "annotation-declared Deployment: log-shipper and metrics-agent converted, audit-tap warned about" {
	run_policy test_data/annotation-declared-deployment.json
	assert_mutated
	assert_container_order '["log-shipper","metrics-agent"]' '["payments"]'
	assert_patched 'native_sidecar("log-shipper") and native_sidecar("metrics-agent")'
	assert_patched 'init_container("log-shipper") | derived_startup_probe(300)'
	assert_patched 'init_container("metrics-agent") | has("startupProbe") | not'
	assert_warning audit-tap
	assert_warning log-shipper converted
	assert_warning metrics-agent converted
}

@test "Pod whose only container is declared a sidecar: rejected, no main container" {
	run_policy test_data/declared-only-pod.json
	assert_rejected 'no main container'
}

@test "Pod with a container that sets its own restartPolicy: not converted, with a warning" {
	run_policy test_data/pod-with-own-restart-policy.json
	assert_accepted_unchanged
	assert_warning log-agent restartPolicy
}

# ---------------------------------------------------------------------------
# Placement after setup containers
# ---------------------------------------------------------------------------

@test "Pod with an init container before istio-init: istio-proxy goes right after istio-init" {
	run_policy test_data/pod-with-setup-init-before-mesh.json
	assert_mutated
	assert_container_order '["wait-for-db","istio-init","istio-proxy"]' '["app"]'
	assert_patched 'native_sidecar("istio-proxy")'
}

@test "Pod with a native istio-proxy and a legacy cloud-sql-proxy: placed after istio-proxy, before db-migrate" {
	run_policy test_data/istio-native-with-cloud-sql-proxy-pod.json
	assert_mutated
	assert_container_order '["istio-init","istio-proxy","cloud-sql-proxy","db-migrate"]' '["app"]'
	assert_patched 'native_sidecar("istio-proxy") and native_sidecar("cloud-sql-proxy")'
	assert_patched 'init_container("db-migrate") | has("restartPolicy") | not'
}

@test "Pod with a custom network-setup init container: setupInitContainers puts envoy after it" {
	run_policy test_data/custom-setup-init-pod.json '{"setupInitContainers":["*-net-setup"]}'
	assert_mutated
	assert_container_order '["cni-net-setup","envoy","db-migrate"]' '["app"]'
	assert_patched 'native_sidecar("envoy")'
	assert_patched 'init_container("envoy") | derived_startup_probe(300)'
}

@test "Pod with a custom network-setup init container: without setupInitContainers envoy goes first" {
	run_policy test_data/custom-setup-init-pod.json
	assert_mutated
	assert_container_order '["envoy","cni-net-setup","db-migrate"]' '["app"]'
}

# ---------------------------------------------------------------------------
# Start-up gating
# ---------------------------------------------------------------------------

@test "native sidecar without a startupProbe: one is derived from its readinessProbe" {
	run_policy test_data/native-sidecar-without-startup-probe-pod.json
	assert_mutated
	assert_container_order '["vault-agent"]' '["app"]'
	assert_patched 'init_container("vault-agent") | derived_startup_probe(300)'
	assert_warning vault-agent startupProbe
}

@test "native sidecar without a startupProbe, startupProbe require: rejected" {
	run_policy test_data/native-sidecar-without-startup-probe-pod.json '{"startupProbe":"require"}'
	assert_rejected vault-agent startupProbe
}

@test "native sidecar without a startupProbe, startupProbe ignore: accepted unchanged" {
	run_policy test_data/native-sidecar-without-startup-probe-pod.json '{"startupProbe":"ignore"}'
	assert_accepted_unchanged
}

# ---------------------------------------------------------------------------
# Termination grace
# ---------------------------------------------------------------------------

@test "istio-prestop Deployment: terminationGracePeriodSeconds unset (30) raised to 35" {
	run_policy test_data/istio-prestop-deployment.json
	assert_mutated
	# orders preStop `sleep 20` + 5 s for each of 3 sidecars.
	assert_patched 'podspec.terminationGracePeriodSeconds == 35'
	assert_container_order '["istio-init","istio-proxy","vault-agent","cloud-sql-proxy","vault-agent-init"]' '["orders"]'
	assert_warning terminationGracePeriodSeconds 'unset (30) -> 35'
}

@test "istio-prestop Deployment, onViolation reject: rejected with the arithmetic" {
	run_policy test_data/istio-prestop-deployment.json '{"terminationGracePeriod":{"onViolation":"reject"}}'
	assert_rejected terminationGracePeriodSeconds 35 orders
}

@test "Job with two sidecars: both converted, the grace period of 20 s already fits" {
	run_policy test_data/job-with-two-sidecars.json
	assert_mutated
	assert_container_order '["cloud-sql-proxy","vault-agent"]' '["etl"]'
	assert_patched 'native_sidecar("cloud-sql-proxy") and native_sidecar("vault-agent")'
	# vault-agent preStop sleep 10 s + 5 s for each of 2 sidecars = 20.
	assert_patched 'podspec.terminationGracePeriodSeconds == 20'
	assert_no_warning_containing terminationGracePeriodSeconds
}

@test "Pod at the maximum grace period: maxSeconds 60, accepted unchanged" {
	run_policy test_data/pod-at-max-grace.json '{"terminationGracePeriod":{"maxSeconds":60}}'
	assert_accepted_unchanged
}

@test "Pod with a 120 s sleep preStop: the grace period is raised to 125" {
	run_policy test_data/sleep-action-above-max-pod.json
	assert_mutated
	assert_container_order '["linkerd-init","linkerd-proxy"]' '["app"]'
	assert_patched 'podspec.terminationGracePeriodSeconds == 125'
	assert_warning terminationGracePeriodSeconds 125
}

@test "Pod with a 120 s sleep preStop, maxSeconds 60: rejected, never adjusted" {
	run_policy test_data/sleep-action-above-max-pod.json '{"terminationGracePeriod":{"maxSeconds":60}}'
	assert_rejected terminationGracePeriodSeconds 60
}

# ---------------------------------------------------------------------------
# Sidecar hygiene
# ---------------------------------------------------------------------------

@test "quitquitquit preStop on a native istio-proxy: accepted unchanged with a warning" {
	run_policy test_data/quitquitquit-prestop-deployment.json
	assert_accepted_unchanged
	assert_warning istio-proxy quitquitquit
}

# ---------------------------------------------------------------------------
# Requests accepted untouched
# ---------------------------------------------------------------------------

@test "Pod UPDATE with a legacy sidecar: accepted untouched in every mode" {
	assert_untouched_in_every_mode test_data/pod-update-with-legacy-sidecar.json
}

@test "Pod UPDATE that changes an image: accepted untouched" {
	jq '.object.spec.containers[0].image += "-rc1"' test_data/pod-update-with-legacy-sidecar.json \
		>"$BATS_TEST_TMPDIR/pod-update-new-image.json"
	assert_untouched_in_every_mode "$BATS_TEST_TMPDIR/pod-update-new-image.json"
}

@test "Deployment DELETE: accepted untouched in every mode" {
	assert_untouched_in_every_mode test_data/deployment-delete.json
}

@test "ConfigMap CREATE: another kind, accepted untouched in every mode" {
	assert_untouched_in_every_mode test_data/configmap-create.json
}

@test "Deployment UPDATE of the replicas only: accepted untouched in every mode" {
	assert_untouched_in_every_mode test_data/deployment-update-replicas-only.json
}

@test "ReplicaSet owned by a Deployment: accepted untouched in every mode" {
	assert_untouched_in_every_mode test_data/replicaset-owned-by-deployment.json
}

@test "ReplicaSet with a non-controller owner reference: converted like any ReplicaSet" {
	jq '.object.metadata.ownerReferences[0].controller = false' test_data/replicaset-owned-by-deployment.json \
		>"$BATS_TEST_TMPDIR/replicaset-not-controlled.json"
	run_policy "$BATS_TEST_TMPDIR/replicaset-not-controlled.json"
	assert_mutated
	assert_container_order '["istio-init","istio-proxy"]' '["checkout"]'
}

@test "mirror Pod: owned by the kubelet, accepted untouched in every mode" {
	assert_untouched_in_every_mode test_data/mirror-pod.json
}

@test "Job UPDATE: accepted untouched in every mode" {
	assert_untouched_in_every_mode test_data/job-update.json
}

@test "Job UPDATE that changes the pod template: still accepted untouched" {
	# test_data/job-update.json leaves the template as in oldObject; this
	# variant shows that a Job UPDATE is skipped for its kind, not for that.
	jq '.object.spec.template.spec.containers[0].image += "-rc1"' test_data/job-update.json \
		>"$BATS_TEST_TMPDIR/job-update-new-template.json"
	assert_untouched_in_every_mode "$BATS_TEST_TMPDIR/job-update-new-template.json"
}

# ---------------------------------------------------------------------------
# Malformed input: rejected with the field path, never a trap
# ---------------------------------------------------------------------------

@test "malformed: annotation values that are not strings" {
	run_policy test_data/malformed-annotation-not-string.json
	assert_rejected 'metadata.annotations["prometheus.io/port"]' 'metadata.annotations["sidecar-lifecycle/containers"]'
}

@test "malformed: a container without a name" {
	run_policy test_data/malformed-container-without-name.json
	assert_rejected 'spec.containers[1].name'
}

@test "malformed: containers is not an array" {
	run_policy test_data/malformed-containers-not-array.json
	assert_rejected 'spec.containers'
}

@test "malformed: a Deployment without its pod spec" {
	run_policy test_data/malformed-deployment-without-pod-spec.json
	assert_rejected 'spec.template.spec'
}

@test "malformed: a container name used twice" {
	run_policy test_data/malformed-duplicate-container-names.json
	assert_rejected 'spec.containers[0].name' 'spec.initContainers[1]' '"app"'
}

@test "malformed: the object's kind differs from the request's" {
	run_policy test_data/malformed-kind-mismatch.json
	assert_rejected kind StatefulSet Deployment
}

@test "malformed: the object is not a JSON object" {
	run_policy test_data/malformed-object-not-an-object.json
	assert_rejected object
}

@test "malformed: terminationGracePeriodSeconds 30.0" {
	run_policy test_data/malformed-tgps-float.json
	assert_rejected 'spec.terminationGracePeriodSeconds'
}

# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------

@test "invalid settings: minSeconds above maxSeconds makes kwctl fail, naming both" {
	run kwctl run --request-path test_data/istio-injected-deployment.json \
		--settings-json '{"terminationGracePeriod":{"minSeconds":90,"maxSeconds":60}}' annotated-policy.wasm
	[ "$status" -ne 0 ] || fail "kwctl accepted invalid settings: $output"
	[[ "$output" == *"Provided settings are not valid"* ]] || fail "unexpected output: $output"
	[[ "$output" == *"terminationGracePeriod.minSeconds"* ]] || fail "the message does not name terminationGracePeriod.minSeconds: $output"
	[[ "$output" == *"terminationGracePeriod.maxSeconds"* ]] || fail "the message does not name terminationGracePeriod.maxSeconds: $output"
}

@test "invalid settings: each is refused with the full path of the key" {
	local case settings path
	for case in \
		'{"sidecars":[{"image":"x"},{"image":""}]}|sidecars[1].image' \
		'{"sidecars":[{"name":"a","tag":"b"}]}|sidecars[0].tag' \
		'{"legacySidecars":"delete"}|legacySidecars' \
		'{"startupProbe":"always"}|startupProbe' \
		'{"startupProbeWindowSeconds":-1}|startupProbeWindowSeconds' \
		'{"sidecarAnnotation":"not a key!"}|sidecarAnnotation' \
		'{"terminationGracePeriod":{"onViolation":"ignore"}}|terminationGracePeriod.onViolation' \
		'{"terminationGracePeriod":{"maxSecond":60}}|terminationGracePeriod.maxSecond' \
		'{"unknownKey":true}|unknownKey'; do
		settings=${case%|*}
		path=${case##*|}
		run kwctl run --request-path test_data/configmap-create.json --settings-json "$settings" annotated-policy.wasm
		[ "$status" -ne 0 ] || fail "kwctl accepted the invalid settings $settings: $output"
		[[ "$output" == *"Provided settings are not valid"*"$path"* ]] ||
			fail "settings $settings: the error does not name $path: $output"
	done
}

@test "settings from a file (--settings-path) are used like --settings-json" {
	printf 'legacySidecars: reject\n' >"$BATS_TEST_TMPDIR/settings.yaml"
	run bash -c 'kwctl run --request-path "$1" --settings-path "$2" annotated-policy.wasm 2>/dev/null' \
		kwctl test_data/istio-injected-deployment.json "$BATS_TEST_TMPDIR/settings.yaml"
	check_kwctl_answer
	assert_rejected istio-proxy 'restartPolicy: Always'
}

# ---------------------------------------------------------------------------
# Idempotence of every conversion
# ---------------------------------------------------------------------------

@test "idempotence: every converted object is accepted unchanged when evaluated again" {
	local case request settings
	for case in \
		'istio-injected-deployment|{}' \
		'istio-prestop-deployment|{}' \
		'linkerd-injected-pod|{}' \
		'cloud-sql-proxy-job|{}' \
		'vault-agent-cronjob|{}' \
		'statefulset-with-fluent-bit|{"sidecars":[{"image":"cr.fluentbit.io/fluent/fluent-bit:*"}]}' \
		'daemonset-with-otel-collector|{}' \
		'replicaset-with-daprd|{}' \
		'replicationcontroller-with-consul|{}' \
		'lifecycle-type-sidecar-pod|{}' \
		'annotation-declared-deployment|{}' \
		'istio-native-with-cloud-sql-proxy-pod|{}' \
		'custom-setup-init-pod|{"setupInitContainers":["*-net-setup"]}' \
		'job-with-two-sidecars|{}' \
		'sleep-action-above-max-pod|{}' \
		'native-sidecar-without-startup-probe-pod|{}' \
		'deployment-update-new-image|{}'; do
		request=${case%%|*}
		settings=${case#*|}
		run_policy "test_data/$request.json" "$settings"
		assert_mutated
		write_request_with_patched_object "$BATS_TEST_TMPDIR/$request-converted.json"
		run_policy "$BATS_TEST_TMPDIR/$request-converted.json" "$settings"
		assert_accepted_unchanged
	done
}

# ---------------------------------------------------------------------------
# The example policy manifests, run as kwctl runs a policy resource
# ---------------------------------------------------------------------------

@test "examples/cluster-wide-conversion.yaml: converts istio-proxy" {
	[ -f examples/cluster-wide-conversion.yaml ] || skip "examples/cluster-wide-conversion.yaml not found"
	use_example cluster-wide-conversion.yaml
	run_manifest test_data/istio-injected-deployment.json
	assert_mutated
	assert_container_order '["istio-init","istio-proxy"]' '["checkout"]'
	assert_patched 'native_sidecar("istio-proxy")'
}

@test "examples/cluster-wide-conversion.yaml with mutating false: the conversion becomes a rejection" {
	[ -f examples/cluster-wide-conversion.yaml ] || skip "examples/cluster-wide-conversion.yaml not found"
	use_example cluster-wide-conversion.yaml -e 's/^([[:space:]]*mutating:).*/\1 false/'
	run_manifest test_data/istio-injected-deployment.json
	assert_rejected 'attempted to mutate'
}

@test "examples/monitor-rollout.yaml: accepted without a patch, the warnings kept" {
	[ -f examples/monitor-rollout.yaml ] || skip "examples/monitor-rollout.yaml not found"
	use_example monitor-rollout.yaml
	run_manifest test_data/istio-injected-deployment.json
	assert_accepted_unchanged
	assert_warning istio-proxy converted
	# What the policy would reject is accepted too.
	run_manifest test_data/declared-only-pod.json
	assert_accepted_unchanged
}

@test "examples/jobs-reject-legacy-sidecars.yaml: Jobs and CronJobs with a legacy sidecar are rejected" {
	[ -f examples/jobs-reject-legacy-sidecars.yaml ] || skip "examples/jobs-reject-legacy-sidecars.yaml not found"
	use_example jobs-reject-legacy-sidecars.yaml
	run_manifest test_data/cloud-sql-proxy-job.json
	assert_rejected cloud-sql-proxy 'restartPolicy: Always'
	run_manifest test_data/vault-agent-cronjob.json
	assert_rejected vault-agent 'restartPolicy: Always'
}

@test "examples/audit-legacy-sidecars.yaml: monitor mode accepts everything" {
	[ -f examples/audit-legacy-sidecars.yaml ] || skip "examples/audit-legacy-sidecars.yaml not found"
	use_example audit-legacy-sidecars.yaml
	run_manifest test_data/istio-injected-deployment.json
	assert_accepted_unchanged
}

@test "examples/audit-legacy-sidecars.yaml in protect mode: rejects without ever attempting a mutation" {
	[ -f examples/audit-legacy-sidecars.yaml ] || skip "examples/audit-legacy-sidecars.yaml not found"
	# Its settings make the policy validate only, as `mutating: false` needs.
	use_example audit-legacy-sidecars.yaml -e 's/^([[:space:]]*mode:).*/\1 protect/'
	grep -q 'mutating: false' "$MANIFEST" || fail "examples/audit-legacy-sidecars.yaml is expected to set mutating: false"
	run_manifest test_data/istio-injected-deployment.json
	assert_rejected istio-proxy 'restartPolicy: Always'
	assert_response '.status.message | contains("attempted to mutate") | not'
	run_manifest test_data/native-sidecar-without-startup-probe-pod.json
	assert_rejected vault-agent startupProbe
	assert_response '.status.message | contains("attempted to mutate") | not'
	# Every violation is listed, not only the first.
	run_manifest test_data/istio-prestop-deployment.json
	assert_rejected istio-proxy vault-agent cloud-sql-proxy
	assert_response '.status.message | contains("attempted to mutate") | not'
	run_manifest test_data/pod-with-native-sidecar.json
	assert_accepted_unchanged
}

@test "examples/namespaced-admission-policy.yaml: an AdmissionPolicy that converts fluent-bit" {
	[ -f examples/namespaced-admission-policy.yaml ] || skip "examples/namespaced-admission-policy.yaml not found"
	use_example namespaced-admission-policy.yaml
	run_manifest test_data/statefulset-with-fluent-bit.json
	assert_mutated
	assert_container_order '["fluent-bit"]' '["postgres"]'
	assert_patched 'native_sidecar("fluent-bit")'
	# 0 + 15 s appShutdownSeconds + 10 s for 1 sidecar, within [45, 300]: 60 stays.
	assert_patched 'podspec.terminationGracePeriodSeconds == 60'
}

# ---------------------------------------------------------------------------
# Re-applied manifests (issue 9): after a merge the sidecar is in both lists
# ---------------------------------------------------------------------------
#
# kubectl apply (client-side and --server-side), helm upgrade, Argo CD and
# Flux merge the manifest (sidecar in containers) into the stored object that
# the policy converted (sidecar native in initContainers): the UPDATE's
# object has the name in both lists, its oldObject is the stored object.
# only_policy_fields_changed compares containers by name and cannot describe
# such a pair, so these tests compare the patched pod template with the
# stored one (the request's oldObject) instead.

REAPPLY_JQ=$(
	cat <<'JQ'
# The pod template of a workload; for a Pod, its spec.
def pod_template:
  if .kind == "Pod" then .spec
  elif .kind == "CronJob" then .spec.jobTemplate.spec.template
  else .spec.template end;

# The paths where two values differ, for failure messages.
def differing_paths($a; $b):
  [($a, $b) | paths(type != "object" and type != "array")] | unique
  | map(select(. as $p | ($a | getpath($p)) != ($b | getpath($p))))
  | map(map(tostring) | "/" + join("/"));
JQ
)

reapplied_warning() {
	printf '%s: re-applied in containers; folded into its native sidecar in initContainers' "$1"
}

# assert_reapplied_patch: accepted with a JSON Patch that applies to the
# request's object; the patch in $PATCH, the patched object in $PATCHED.
assert_reapplied_patch() {
	assert_response '.allowed == true and .patchType == "JSONPatch" and (.patch | type) == "string"'
	jq -r '.patch | @base64d' <<<"$RESPONSE" >"$PATCH"
	jq -e 'type == "array" and length > 0' "$PATCH" >/dev/null ||
		fail "the patch is not a non-empty JSON Patch: $(cat "$PATCH")"
	jq -c --slurpfile patch "$PATCH" "$JQ_LIB"' .object | apply_jsonpatch($patch[0])' "$REQUEST" >"$PATCHED" ||
		fail "the patch does not apply to the object of $REQUEST: $(cat "$PATCH")"
}

# assert_template_is_stored [JQ_FILTER]: the patched object's pod template
# (a Pod: its spec) is the request's oldObject's, after JQ_FILTER (default:
# none) is applied to the stored one, for what the merge itself changed.
assert_template_is_stored() {
	local adjust="${1:-.}"
	local program="$REAPPLY_JQ"'
	  ($request[0].oldObject | pod_template | '"$adjust"') as $stored
	  | ($after[0] | pod_template) as $patched'
	jq -e -n --slurpfile request "$REQUEST" --slurpfile after "$PATCHED" \
		"$program"' | $stored == $patched' >/dev/null ||
		fail "the patched pod template is not the stored one (adjusted by: $adjust); differing paths:" \
			"$(jq -c -n --slurpfile request "$REQUEST" --slurpfile after "$PATCHED" \
				"$program"' | differing_paths($stored; $patched)')"
}

# assert_only_template_patched: outside the pod template (a Pod: its spec)
# the patched object is the request's object.
assert_only_template_patched() {
	jq -e -n --slurpfile request "$REQUEST" --slurpfile after "$PATCHED" "$REAPPLY_JQ"'
	  ($request[0].object | pod_template) as $t
	  | ($after[0] | pod_template = $t) == $request[0].object' >/dev/null ||
		fail "the patch changes the object outside its pod template: $(jq -c 'map(.path)' "$PATCH")"
}

# assert_exact_warnings WARNING...: the warnings are exactly these, in order.
assert_exact_warnings() {
	local expected
	expected=$(printf '%s\n' "$@" | jq -R . | jq -s -c .)
	assert_response '(.warnings // []) == $expected' --argjson expected "$expected"
}

# assert_patched_request_is_stable: the request with the patched object is
# accepted unchanged (the fold gave the stored template: nothing more to do).
assert_patched_request_is_stable() {
	write_request_with_patched_object "$BATS_TEST_TMPDIR/patched-request.json"
	run_policy "$BATS_TEST_TMPDIR/patched-request.json"
	assert_accepted_unchanged
	assert_no_warnings
}

ISTIO_DUPLICATE='spec.template.spec.containers[1].name: "istio-proxy" is already the name of spec.template.spec.initContainers[1]'

@test "re-applied Istio Deployment (kubectl apply): folded back into the stored template, nothing rolls out" {
	run_policy test_data/istio-deployment-reapplied-unchanged.json
	assert_reapplied_patch
	assert_template_is_stored
	assert_only_template_patched
	assert_all_patch_paths_under /spec/template
	assert_container_order '["istio-init","istio-proxy"]' '["checkout"]'
	assert_patched 'native_sidecar("istio-proxy")'
	assert_exact_warnings "$(reapplied_warning istio-proxy)"
	assert_patched_request_is_stable
}

@test "re-applied Istio Deployment (helm upgrade) with a new proxy image: updated in place, the rest as stored" {
	run_policy test_data/istio-deployment-reapplied-new-proxy-image.json
	assert_reapplied_patch
	assert_template_is_stored '.spec.initContainers[0].image = "docker.io/istio/proxyv2:1.22.4"
		| .spec.initContainers[1].image = "docker.io/istio/proxyv2:1.22.4"'
	assert_only_template_patched
	assert_container_order '["istio-init","istio-proxy"]' '["checkout"]'
	assert_patched 'init_container("istio-proxy") | .image == "docker.io/istio/proxyv2:1.22.4" and .restartPolicy == "Always"'
	assert_exact_warnings "$(reapplied_warning istio-proxy)"
}

@test "re-applied Linkerd StatefulSet (server-side apply): the same startupProbe is derived again" {
	run_policy test_data/linkerd-statefulset-reapplied.json
	assert_reapplied_patch
	assert_template_is_stored
	assert_only_template_patched
	assert_container_order '["linkerd-init","linkerd-proxy"]' '["ledger"]'
	assert_patched 'init_container("linkerd-proxy").startupProbe
		== {"httpGet": {"path": "/ready", "port": 4191, "scheme": "HTTP"}, "initialDelaySeconds": 2,
		    "timeoutSeconds": 1, "periodSeconds": 1, "successThreshold": 1, "failureThreshold": 300}'
	assert_exact_warnings "$(reapplied_warning linkerd-proxy)"
}

@test "re-applied vault-agent CronJob with a new schedule: the job template stays as stored" {
	run_policy test_data/vault-agent-cronjob-reapplied.json
	assert_reapplied_patch
	assert_template_is_stored
	assert_only_template_patched
	assert_all_patch_paths_under /spec/jobTemplate/spec/template/spec
	assert_container_order '["vault-agent","vault-agent-init"]' '["report"]'
	assert_patched '.spec.schedule == "0 3 * * *"'
	assert_exact_warnings "$(reapplied_warning vault-agent)"
}

@test "re-applied Job (Argo CD), unchanged: the immutable pod spec comes back exactly as stored" {
	run_policy test_data/cloud-sql-proxy-job-reapplied-unchanged.json
	assert_reapplied_patch
	assert_template_is_stored
	assert_only_template_patched
	assert_all_patch_paths_under /spec/template/spec
	assert_container_order '["cloud-sql-proxy"]' '["migrate"]'
	assert_exact_warnings "$(reapplied_warning cloud-sql-proxy)"
}

@test "re-applied Job with new proxy args: accepted untouched, left to the API server" {
	run_policy test_data/cloud-sql-proxy-job-reapplied-changed.json
	assert_accepted_unchanged
	assert_no_warnings
}

@test "re-applied Job, legacySidecars reject or warn: accepted untouched" {
	local settings
	for settings in '{"legacySidecars":"reject"}' '{"legacySidecars":"warn"}'; do
		run_policy test_data/cloud-sql-proxy-job-reapplied-unchanged.json "$settings"
		assert_accepted_unchanged
		assert_no_warnings
	done
}

@test "re-applied naked Pod, unchanged but a label: the spec comes back as stored, the label is kept" {
	run_policy test_data/pod-reapplied-unchanged.json
	assert_reapplied_patch
	assert_template_is_stored
	assert_only_template_patched
	assert_all_patch_paths_under /spec
	assert_container_order '["cloud-sql-proxy"]' '["psql"]'
	assert_patched '.metadata.labels.ticket == "OPS-1290"'
	assert_exact_warnings "$(reapplied_warning cloud-sql-proxy)"
}

@test "re-applied naked Pod with a changed proxy env: accepted untouched, left to the API server" {
	run_policy test_data/pod-reapplied-changed.json
	assert_accepted_unchanged
	assert_no_warnings
}

@test "re-applied naked Pod with an automounted token: the proxy comes back without the mount, accepted untouched" {
	run_policy test_data/pod-reapplied-unchanged-with-token-mount.json
	assert_accepted_unchanged
	assert_no_warnings
}

@test "malformed: a CREATE with the sidecar in both lists names the duplicate" {
	run_policy test_data/deployment-create-with-duplicate-sidecar.json
	assert_rejected "$ISTIO_DUPLICATE"
}

@test "re-applied Istio Deployment, legacySidecars reject or warn: the duplicate stays malformed" {
	local settings
	for settings in '{"legacySidecars":"reject"}' '{"legacySidecars":"warn"}'; do
		run_policy test_data/istio-deployment-reapplied-unchanged.json "$settings"
		assert_rejected "$ISTIO_DUPLICATE"
	done
}

@test "re-applied Istio Deployment, builtinSidecars false: istio-proxy is no sidecar, the duplicate stays malformed" {
	run_policy test_data/istio-deployment-reapplied-unchanged.json '{"builtinSidecars":false}'
	assert_rejected "$ISTIO_DUPLICATE"
}

@test "re-applied Istio Deployment opted out by sidecar-lifecycle/standard-containers: the duplicate stays malformed" {
	jq '.object.spec.template.metadata.annotations["sidecar-lifecycle/standard-containers"] = "istio-proxy"' \
		test_data/istio-deployment-reapplied-unchanged.json >"$BATS_TEST_TMPDIR/opted-out.json"
	run_policy "$BATS_TEST_TMPDIR/opted-out.json"
	assert_rejected "$ISTIO_DUPLICATE"
}

@test "malformed: a duplicate of an init container that is not native is no re-applied sidecar" {
	run_policy test_data/reapplied-duplicate-not-native-init.json
	assert_rejected 'spec.template.spec.containers[1].name: "cloud-sql-proxy" is already the name of spec.template.spec.initContainers[0]'
}

# ---------------------------------------------------------------------------
# Know the meshes (issue 10): what each injector writes
# ---------------------------------------------------------------------------

# assert_untouched_in_legacy_modes REQUEST: accepted, unchanged, without
# warnings, with legacySidecars convert (default), reject and warn.
assert_untouched_in_legacy_modes() {
	local settings
	for settings in '{}' '{"legacySidecars":"reject"}' '{"legacySidecars":"warn"}'; do
		run_policy "$1" "$settings"
		assert_accepted_unchanged
		assert_no_warnings
	done
}

# istio_record POINTER_JQ: the sidecar.istio.io/status record at the jq path
# (e.g. .spec.template.metadata) of the patched object, parsed.
istio_record() {
	jq -c "$1"'.annotations["sidecar.istio.io/status"] | fromjson' "$PATCHED"
}

# assert_istio_record POINTER_JQ INIT_CONTAINERS CONTAINERS: the record's
# lists, as JSON arrays (an absent or null list reads as []).
assert_istio_record() {
	local actual expected
	actual=$(istio_record "$1" | jq -c '{initContainers: (.initContainers // []), containers: (.containers // [])}')
	expected=$(jq -c -n --argjson i "$2" --argjson c "$3" '{initContainers: $i, containers: $c}')
	[ "$actual" = "$expected" ] ||
		fail "sidecar.istio.io/status at $1: expected $expected" "got $actual"
}

@test "mesh: Istio gateway chart Deployment with image auto: left to the injector, silently, in every mode" {
	assert_untouched_in_legacy_modes test_data/istio-gateway-chart-auto-image-deployment.json
}

@test "mesh: image auto wins over a declaration by annotation, silently" {
	jq '.object.spec.template.metadata.annotations["sidecar-lifecycle/containers"] = "istio-proxy"' \
		test_data/istio-gateway-chart-auto-image-deployment.json >"$BATS_TEST_TMPDIR/auto-declared.json"
	assert_untouched_in_legacy_modes "$BATS_TEST_TMPDIR/auto-declared.json"
}

@test "mesh: istio-proxy override container without sidecar.istio.io/status: not a sidecar, in every mode" {
	assert_untouched_in_legacy_modes test_data/istio-override-container-deployment.json
}

@test "mesh: injected gateway running proxy router: istio-proxy is the main container, in every mode" {
	assert_untouched_in_legacy_modes test_data/istio-injected-gateway-proxy-router-deployment.json
}

@test "mesh: injected gateway with its args overridden to proxy sidecar: converted" {
	jq '(.object.spec.template.spec.containers[] | select(.name == "istio-proxy") | .args[1]) = "sidecar"' \
		test_data/istio-injected-gateway-proxy-router-deployment.json >"$BATS_TEST_TMPDIR/gateway-as-sidecar.json"
	run_policy "$BATS_TEST_TMPDIR/gateway-as-sidecar.json"
	assert_mutated
	assert_container_order '["istio-proxy"]' '["oauth2-proxy"]'
	assert_istio_record .spec.template.metadata '["istio-proxy"]' '[]'
}

@test "mesh: CronJob from istioctl kube-inject: converted, the job template's record rewritten" {
	run_policy test_data/istio-kube-injected-cronjob.json
	assert_mutated
	assert_container_order '["istio-init","istio-proxy"]' '["sweeper"]'
	assert_patched 'native_sidecar("istio-proxy")'
	assert_patched 'init_container("istio-proxy") | .startupProbe == {httpGet: .readinessProbe.httpGet, timeoutSeconds: 3, periodSeconds: 1, successThreshold: 1, failureThreshold: 300}'
	assert_patched 'podspec.terminationGracePeriodSeconds == 30'
	assert_istio_record .spec.jobTemplate.metadata '["istio-init","istio-proxy"]' '[]'
	# every other member of the record is kept
	[ "$(istio_record .spec.jobTemplate.metadata | jq -c '[.revision, .imagePullSecrets, (.volumes | length)]')" = '["default",null,8]' ] ||
		fail "the record lost members: $(istio_record .spec.jobTemplate.metadata)"
	# the pod template had no record and gets none
	assert_patched '.spec.jobTemplate.spec.template.metadata.annotations["sidecar.istio.io/status"] == null'
	assert_all_patch_paths_under /spec/jobTemplate
	assert_warning 'istio-proxy: converted to a native sidecar in initContainers (built-in sidecar)'
	assert_warning 'istio-proxy: startupProbe derived from its readinessProbe (300 x 1 s = 300 s to start)'
}

@test "mesh: CronJob with the record on both templates: both rewritten" {
	run_policy test_data/istio-kube-injected-cronjob-both-records.json
	assert_mutated
	assert_container_order '["istio-init","istio-proxy"]' '["sweeper"]'
	assert_istio_record .spec.jobTemplate.metadata '["istio-init","istio-proxy"]' '[]'
	assert_istio_record .spec.jobTemplate.spec.template.metadata '["istio-init","istio-proxy"]' '[]'
}

@test "mesh: CronJob from istioctl kube-inject, legacySidecars reject: rejected, naming istio-proxy" {
	run_policy test_data/istio-kube-injected-cronjob.json '{"legacySidecars":"reject"}'
	assert_rejected 'spec.jobTemplate.spec.template.spec.containers[1] (istio-proxy)' 'restartPolicy: Always'
}

@test "mesh: injected Pod whose istio-proxy args have no mode word: converted, its record rewritten" {
	run_policy test_data/istio-injected-pod-overridden-proxy-args.json
	assert_mutated
	assert_container_order '["istio-init","istio-proxy"]' '["search-api"]'
	assert_patched 'native_sidecar("istio-proxy")'
	assert_patched 'init_container("istio-proxy") | .args[0:3] == ["proxy","--domain","$(POD_NAMESPACE).svc.cluster.local"]'
	assert_istio_record .metadata '["istio-init","istio-proxy"]' '[]'
	assert_warning istio-proxy converted
}

@test "mesh: sidecar.istio.io/nativeSidecar false: Istio's opt-out, silently, in every mode" {
	assert_untouched_in_legacy_modes test_data/istio-native-sidecar-opt-out-deployment.json
}

@test "mesh: sidecar.istio.io/nativeSidecar true: converted" {
	jq '.object.spec.template.metadata.annotations["sidecar.istio.io/nativeSidecar"] = "true"' \
		test_data/istio-native-sidecar-opt-out-deployment.json >"$BATS_TEST_TMPDIR/native-true.json"
	run_policy "$BATS_TEST_TMPDIR/native-true.json"
	assert_mutated
	assert_container_order '["istio-init","istio-proxy"]' '["fraud-scoring"]'
	assert_istio_record .spec.template.metadata '["istio-init","istio-proxy"]' '[]'
}

@test "mesh: Linkerd proxy-enable-native-sidecar false: Linkerd's opt-out, silently, in every mode" {
	assert_untouched_in_legacy_modes test_data/linkerd-native-sidecar-opt-out-pod.json
}

@test "mesh: Linkerd opt-out under the beta and alpha prefixes, and with white space around false" {
	local key value
	for key in config.beta.linkerd.io config.alpha.linkerd.io config.linkerd.io; do
		for value in false ' false '; do
			jq --arg key "$key/proxy-enable-native-sidecar" --arg value "$value" \
				'.object.metadata.annotations |= (del(.["config.linkerd.io/proxy-enable-native-sidecar"]) | .[$key] = $value)' \
				test_data/linkerd-native-sidecar-opt-out-pod.json >"$BATS_TEST_TMPDIR/linkerd-opt-out.json"
			run_policy "$BATS_TEST_TMPDIR/linkerd-opt-out.json"
			assert_accepted_unchanged
			assert_no_warnings
		done
	done
}

@test "mesh: Linkerd proxy-enable-native-sidecar true: converted" {
	jq '.object.metadata.annotations["config.linkerd.io/proxy-enable-native-sidecar"] = "true"' \
		test_data/linkerd-native-sidecar-opt-out-pod.json >"$BATS_TEST_TMPDIR/linkerd-native-true.json"
	run_policy "$BATS_TEST_TMPDIR/linkerd-native-true.json"
	assert_mutated
	assert_container_order '["linkerd-init","linkerd-proxy"]' '["quotes"]'
	assert_patched 'native_sidecar("linkerd-proxy")'
}

@test "mesh: linkerd-identity Deployment: linkerd-proxy stays regular, with a warning in every mode" {
	local settings
	for settings in '{}' '{"legacySidecars":"reject"}' '{"legacySidecars":"warn"}'; do
		run_policy test_data/linkerd-identity-controller-deployment.json "$settings"
		assert_accepted_unchanged
		assert_warning linkerd-proxy 'stays a regular container' LINKERD2_PROXY_IDENTITY_SVC_ADDR
		assert_response '(.warnings | length) == 1'
	done
}

@test "mesh: linkerd-identity Deployment pointed at the identity Service: an ordinary sidecar" {
	jq '(.object.spec.template.spec.containers[] | select(.name == "linkerd-proxy") | .env[] | select(.name == "LINKERD2_PROXY_IDENTITY_SVC_ADDR") | .value) = "linkerd-identity-headless.linkerd.svc.cluster.local.:8080"' \
		test_data/linkerd-identity-controller-deployment.json >"$BATS_TEST_TMPDIR/identity-remote.json"
	run_policy "$BATS_TEST_TMPDIR/identity-remote.json"
	assert_mutated
	assert_container_order '["linkerd-init","linkerd-proxy"]' '["identity"]'
	assert_no_warning_containing 'stays a regular container'
}

@test "mesh: Linkerd Pod with the remote identity Service: converted" {
	run_policy test_data/linkerd-remote-identity-pod.json
	assert_mutated
	assert_container_order '["linkerd-init","linkerd-proxy"]' '["stock-api"]'
	assert_patched 'native_sidecar("linkerd-proxy")'
	assert_patched 'init_container("linkerd-proxy") | .lifecycle.postStart != null'
	assert_patched 'init_container("linkerd-proxy") | .startupProbe == {httpGet: .readinessProbe.httpGet, initialDelaySeconds: 2, timeoutSeconds: 1, periodSeconds: 1, successThreshold: 1, failureThreshold: 300}'
	assert_all_patch_paths_under /spec
	assert_warning 'linkerd-proxy: startupProbe derived from its readinessProbe (300 x 1 s = 300 s to start)'
}

@test "mesh: standard-containers annotation: vault-agent stays regular, cloud-sql-proxy converted, silently" {
	run_policy test_data/standard-containers-annotation-deployment.json
	assert_mutated
	assert_container_order '["cloud-sql-proxy","vault-agent-init"]' '["api","vault-agent"]'
	assert_patched 'native_sidecar("cloud-sql-proxy")'
	assert_patched 'container("vault-agent") | has("restartPolicy") | not'
	assert_response '.warnings == ["cloud-sql-proxy: converted to a native sidecar in initContainers (built-in sidecar)"]'
}

@test "mesh: standard-containers annotation naming a container that does not exist: one warning" {
	jq '.object.spec.template.metadata.annotations["sidecar-lifecycle/standard-containers"] = "vault-agent, ghost"' \
		test_data/standard-containers-annotation-deployment.json >"$BATS_TEST_TMPDIR/standard-ghost.json"
	run_policy "$BATS_TEST_TMPDIR/standard-ghost.json"
	assert_mutated
	assert_container_order '["cloud-sql-proxy","vault-agent-init"]' '["api","vault-agent"]'
	assert_warning 'annotation sidecar-lifecycle/standard-containers: "ghost" is not a container of this pod; ignored'
	assert_response '(.warnings | length) == 2'
}

@test "mesh: standardAnnotation off: vault-agent is a catalogue sidecar again" {
	run_policy test_data/standard-containers-annotation-deployment.json '{"standardAnnotation":""}'
	assert_mutated
	assert_container_order '["vault-agent","cloud-sql-proxy","vault-agent-init"]' '["api"]'
}

@test "mesh: a name in both annotations stays regular, with a warning" {
	run_policy test_data/both-annotations-deployment.json
	assert_mutated
	assert_container_order '["log-shipper"]' '["web","audit-tap"]'
	assert_patched 'native_sidecar("log-shipper")'
	assert_warning audit-tap both
	assert_warning log-shipper converted
	assert_response '(.warnings | length) == 2'
}

@test "mesh: standardAnnotation set to a custom key: daprd stays regular" {
	run_policy test_data/custom-standard-annotation-pod.json '{"standardAnnotation":"platform.example.com/keep-regular"}'
	assert_accepted_unchanged
	assert_no_warnings
}

@test "mesh: the custom key means nothing with the default settings: daprd converted" {
	run_policy test_data/custom-standard-annotation-pod.json
	assert_mutated
	assert_container_order '["daprd"]' '["orders"]'
	assert_patched 'init_container("daprd") | .startupProbe.periodSeconds == 1 and .startupProbe.failureThreshold == 300'
}

@test "mesh: cloud-sql-proxy with a cloud-sql-proxy shutdown preStop: converted, with a hygiene warning" {
	run_policy test_data/cloud-sql-proxy-shutdown-prestop-deployment.json
	assert_mutated
	assert_container_order '["cloud-sql-proxy"]' '["reconciler"]'
	assert_patched 'native_sidecar("cloud-sql-proxy")'
	# its own startupProbe is kept
	assert_patched 'init_container("cloud-sql-proxy") | .startupProbe.httpGet.path == "/startup" and .startupProbe.failureThreshold == 60'
	assert_warning 'cloud-sql-proxy: converted to a native sidecar in initContainers (built-in sidecar)'
	assert_warning cloud-sql-proxy shutdown
	assert_response '(.warnings | length) == 2'
}

@test "mesh: requests as a cluster sends them: converted like the manifests" {
	run_policy test_data/istio-injected-deployment-as-cluster-sends.json
	assert_mutated
	assert_container_order '["istio-init","istio-proxy"]' '["checkout"]'
	assert_patched 'podspec.terminationGracePeriodSeconds == 30'
	assert_istio_record .spec.template.metadata '["istio-init","istio-proxy"]' '[]'
	assert_no_warning_containing terminationGracePeriodSeconds

	run_policy test_data/linkerd-injected-pod.json
	assert_mutated
	assert_container_order '["linkerd-init","linkerd-proxy"]' '["web"]'

	run_policy test_data/cloud-sql-proxy-job-as-cluster-sends.json
	assert_mutated
	assert_container_order '["cloud-sql-proxy"]' '["migrate"]'
	assert_patched '.spec.manualSelector == false and (.spec | has("selector") | not)'
}

@test "mesh: startupProbePeriodSeconds and startupProbeWindowSeconds shape the derived probe" {
	local case settings period threshold
	for case in \
		'{}|1|300' \
		'{"startupProbePeriodSeconds":5}|5|60' \
		'{"startupProbePeriodSeconds":0}|15|20' \
		'{"startupProbePeriodSeconds":60}|15|20' \
		'{"startupProbeWindowSeconds":0}|15|4' \
		'{"startupProbeWindowSeconds":0,"startupProbePeriodSeconds":5}|15|4'; do
		IFS='|' read -r settings period threshold <<<"$case"
		run_policy test_data/istio-injected-deployment-as-cluster-sends.json "$settings"
		assert_mutated
		assert_patched 'init_container("istio-proxy") | .startupProbe == {httpGet: .readinessProbe.httpGet, timeoutSeconds: 3, periodSeconds: $p, successThreshold: 1, failureThreshold: $t}' \
			--argjson p "$period" --argjson t "$threshold"
		assert_warning "istio-proxy: startupProbe derived from its readinessProbe ($threshold x $period s = $((threshold * period)) s to start)"
	done
}

@test "mesh: invalid settings of issue 10 are refused with the key" {
	local case settings path
	for case in \
		'{"standardAnnotation":"not a key!"}|standardAnnotation' \
		'{"standardAnnotation":"sidecar-lifecycle/containers"}|standardAnnotation' \
		'{"startupProbePeriodSeconds":-1}|startupProbePeriodSeconds' \
		'{"startupProbePeriodSeconds":"5"}|startupProbePeriodSeconds' \
		'{"builtinSidecars":""}|builtinSidecars'; do
		settings=${case%|*}
		path=${case##*|}
		run kwctl run --request-path test_data/configmap-create.json --settings-json "$settings" annotated-policy.wasm
		[ "$status" -ne 0 ] || fail "kwctl accepted the invalid settings $settings: $output"
		[[ "$output" == *"Provided settings are not valid"*"$path"* ]] ||
			fail "settings $settings: the error does not name $path: $output"
	done
}

@test "mesh: valid settings of issue 10, and empty strings that mean the defaults" {
	local settings
	for settings in \
		'{"standardAnnotation":""}' \
		'{"standardAnnotation":"platform.example.com/keep-regular"}' \
		'{"standardAnnotation":"sidecar-lifecycle/containers","sidecarAnnotation":""}' \
		'{"startupProbePeriodSeconds":0}' \
		'{"startupProbePeriodSeconds":"","legacySidecars":"","terminationGracePeriod":{"minSeconds":""}}'; do
		run_policy test_data/istio-kube-injected-cronjob.json "$settings"
		assert_mutated
	done
	# the cleared form answers as the empty settings
	run_policy test_data/istio-kube-injected-cronjob.json '{}'
	local expected=$RESPONSE
	run_policy test_data/istio-kube-injected-cronjob.json \
		'{"startupProbePeriodSeconds":"","legacySidecars":"","terminationGracePeriod":{"minSeconds":""}}'
	[ "$(jq -S -c 'del(.uid)' <<<"$RESPONSE")" = "$(jq -S -c 'del(.uid)' <<<"$expected")" ] ||
		fail "empty strings do not answer as the defaults" "defaults: $expected" "cleared:  $RESPONSE"
}

@test "mesh: idempotence: every converted object of issue 10 is accepted unchanged when evaluated again" {
	local case request settings
	for case in \
		'istio-kube-injected-cronjob|{}' \
		'istio-kube-injected-cronjob-both-records|{}' \
		'istio-injected-pod-overridden-proxy-args|{}' \
		'linkerd-remote-identity-pod|{}' \
		'standard-containers-annotation-deployment|{}' \
		'both-annotations-deployment|{}' \
		'custom-standard-annotation-pod|{}' \
		'cloud-sql-proxy-shutdown-prestop-deployment|{}' \
		'istio-injected-deployment-as-cluster-sends|{}' \
		'linkerd-injected-pod|{}' \
		'cloud-sql-proxy-job-as-cluster-sends|{}'; do
		request=${case%%|*}
		settings=${case#*|}
		run_policy "test_data/$request.json" "$settings"
		assert_mutated
		write_request_with_patched_object "$BATS_TEST_TMPDIR/$request-converted.json"
		run_policy "$BATS_TEST_TMPDIR/$request-converted.json" "$settings"
		assert_accepted_unchanged
	done
}
