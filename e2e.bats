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
# Its logs go to stderr, which the helpers keep out of the answer. Invalid
# settings make it exit non-zero with "Error: Provided settings are not valid:
# <message>" on stderr.
#
# Goldens
# -------
# Every request test_data/<scenario>.json has its expected answers in
# test_data/<scenario>.golden.json, one per entry of its settings file
# (test_data/README.md); tests/goldens.rs checks them through the waPC host
# and `make goldens` rewrites them. The first test runs kwctl on every
# request with each of those settings and writes its answer the way a golden
# records the policy's: `allowed` is `accepted`, `status.message` the
# message, `warnings` the warnings (null counts as []), and the request's
# object with kwctl's JSON Patch applied is `mutated_object`. kwctl computes
# the patch with json_patch::diff, whose operations are an implementation
# detail of that crate (moving a container may come out as replacements of
# others), so the patched object is compared, not the operations. The other
# tests cover what a golden cannot say: settings validation by kwctl and the
# example policy manifests, whose mode and mutating flag kwctl applies.

# ---------------------------------------------------------------------------
# jq library, prepended to the jq programs of the helpers
# ---------------------------------------------------------------------------

JQ_LIB=$(
	cat "${BATS_TEST_DIRNAME:-.}/test_data/json-patch.jq"
	cat <<'JQ'
# Input: kwctl's AdmissionResponse to $request evaluated with $settings.
# Output: that answer as a golden records the policy's (tests/goldens.rs).
def as_golden($request; $settings):
  . as $response
  | {settings: $settings, accepted: .allowed, warnings: (.warnings // [])}
  + (if .status.message != null then {message: .status.message} else {} end)
  + (if .status.code != null then {code: .status.code} else {} end)
  + (if .auditAnnotations != null then {audit_annotations: .auditAnnotations} else {} end)
  + (if .patch != null
     then {mutated_object: ($request.object | apply_jsonpatch($response.patch | @base64d | fromjson))}
     else {} end);

# Input: an object the policy mutated; $original: the request's object.
# Output: the object with `lifecycle.type: Standard` put back on each
# container that carried it in $original. A mutated object never carries the
# marker (SPEC §4); the manifest still says it, so the idempotence check
# evaluates the object as it would be applied again (tests/common does the
# same).
def with_standard_markers($original):
  def pod_spec_path:
    if .kind == "Pod" then ["spec"]
    elif .kind == "CronJob" then ["spec", "jobTemplate", "spec", "template", "spec"]
    else ["spec", "template", "spec"] end;
  ($original | pod_spec_path) as $spec
  | [$original | getpath($spec) | (.containers // []) + (.initContainers // [])
     | .[] | select((.lifecycle | type) == "object" and .lifecycle.type == "Standard") | .name] as $opted
  | reduce ("containers", "initContainers") as $list (.;
      if (getpath($spec + [$list]) | type) == "array" then
        setpath($spec + [$list]; getpath($spec + [$list])
          | map(if (.name | IN($opted[])) then .lifecycle = ((.lifecycle // {}) + {type: "Standard"}) else . end))
      else . end);
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
	local settings="${2:-}"
	[ -n "$settings" ] || settings='{}'
	LAST_RUN="kwctl run --request-path $1 --settings-json '$settings' annotated-policy.wasm"
	run bash -c 'kwctl run --request-path "$1" --settings-json "$2" annotated-policy.wasm 2>"$3"' \
		kwctl "$1" "$settings" "$BATS_TEST_TMPDIR/kwctl.stderr"
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
	LAST_RUN="kwctl run --request-path $1 $MANIFEST"
	run bash -c 'kwctl run --request-path "$1" "$2" 2>"$3"' \
		kwctl "$1" "$MANIFEST" "$BATS_TEST_TMPDIR/kwctl.stderr"
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

# assert_warning TEXT...: one of the warnings contains every TEXT.
assert_warning() {
	local texts
	texts=$(printf '%s\n' "$@" | jq -R . | jq -s -c .)
	assert_response 'any((.warnings // [])[]; . as $w | all($texts[]; . as $t | $w | contains($t)))' \
		--argjson texts "$texts"
}

# render_as_golden REQUEST SETTINGS RESPONSE_FILE: kwctl's answer in
# RESPONSE_FILE as a golden records it, keys sorted; fails when its patch
# does not apply to the request's object.
render_as_golden() {
	jq -S --slurpfile request "$1" --argjson settings "$2" \
		"$JQ_LIB"' as_golden($request[0]; $settings)' "$3"
}

# differs_from_golden EXPECTED_FILE ACTUAL_FILE: prints a unified diff of
# the two answers (keys sorted) and returns 1 when they differ.
differs_from_golden() {
	local shown=80
	diff -u --label golden --label kwctl "$1" "$2" >"$BATS_TEST_TMPDIR/answer.diff" && return 1
	head -n "$shown" "$BATS_TEST_TMPDIR/answer.diff"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/answer.diff")" -le "$shown" ] || echo "(diff cut at $shown lines)"
}

# assert_answers_as_golden REQUEST SETTINGS: kwctl's last answer ($RESPONSE)
# to REQUEST is the one its golden records for SETTINGS (a JSON object).
assert_answers_as_golden() {
	local golden="${1%.json}.golden.json" expected="$BATS_TEST_TMPDIR/expected.json"
	jq -S -e --argjson settings "$2" 'map(select(.settings == $settings)) | first' "$golden" >"$expected" ||
		fail "$golden has no answer for the settings $2: add them to ${1%.json}.settings.json, then make goldens"
	render_as_golden "$1" "$2" <(printf '%s\n' "$RESPONSE") >"$BATS_TEST_TMPDIR/actual.json" ||
		fail "kwctl's patch does not apply to the object of $1: $(show_response)"
	! differs_from_golden "$expected" "$BATS_TEST_TMPDIR/actual.json" ||
		fail "kwctl's answer to $1 with $2 differs from $golden (above)"
}

# kwctl_answer REQUEST SETTINGS FILE: writes kwctl's AdmissionResponse to
# REQUEST with SETTINGS to FILE; prints why and returns 1 when kwctl fails or
# does not print one AdmissionResponse.
kwctl_answer() {
	local command="kwctl run --request-path $1 --settings-json '$2' annotated-policy.wasm"
	if ! kwctl run --request-path "$1" --settings-json "$2" annotated-policy.wasm \
		>"$3" 2>"$BATS_TEST_TMPDIR/kwctl.stderr"; then
		echo "$command failed:"
		tail -n 15 "$BATS_TEST_TMPDIR/kwctl.stderr"
		return 1
	fi
	jq -e -s 'length == 1 and (.[0] | type == "object" and (.allowed | type) == "boolean")' "$3" >/dev/null 2>&1 || {
		echo "$command did not print one AdmissionResponse:"
		head -c 2000 "$3"
		return 1
	}
}

# check_golden_answer REQUEST GOLDEN INDEX: kwctl's answer to REQUEST with the
# settings of the golden's answer INDEX is that answer, and when the policy
# mutates, the patched object is accepted unchanged (idempotence). Prints
# what differs and returns 1 on a mismatch.
check_golden_answer() {
	local request="$1" settings
	local expected="$BATS_TEST_TMPDIR/expected.json" actual="$BATS_TEST_TMPDIR/actual.json"
	local response="$BATS_TEST_TMPDIR/response.json" again="$BATS_TEST_TMPDIR/again.json"
	jq -S ".[$3]" "$2" >"$expected"
	settings=$(jq -c .settings "$expected")
	kwctl_answer "$request" "$settings" "$response" || return 1
	if ! render_as_golden "$request" "$settings" "$response" >"$actual"; then
		echo "$request with $settings: kwctl's patch does not apply to the object: $(jq -r .patch "$response" | base64 -d)"
		return 1
	fi
	if differs_from_golden "$expected" "$actual"; then
		echo "$request with $settings: kwctl's answer differs from $2 (above)"
		return 1
	fi
	jq -e 'has("mutated_object")' "$expected" >/dev/null || return 0
	jq --slurpfile answer "$expected" \
		"$JQ_LIB"' .object as $original | .object = ($answer[0].mutated_object | with_standard_markers($original))' \
		"$request" >"$again"
	kwctl_answer "$again" "$settings" "$response" || return 1
	jq -e '.allowed == true and .patch == null' "$response" >/dev/null || {
		echo "$request with $settings: not idempotent, the patched object is answered $(jq -c 'del(.patch)' "$response")"
		return 1
	}
}

# ---------------------------------------------------------------------------
# Every request of test_data/ with each of its settings, against its golden
# ---------------------------------------------------------------------------

@test "goldens: kwctl answers every request of test_data/, with each of its settings, as its golden" {
	local request golden settings count index cases=0 mismatches=()
	for request in test_data/*.json; do
		case "$request" in *.settings.json | *.golden.json) continue ;; esac
		golden="${request%.json}.golden.json"
		settings="${request%.json}.settings.json"
		if [ ! -f "$golden" ]; then
			mismatches+=("$request: no $golden (make goldens)")
			continue
		fi
		if ! jq -e -n --slurpfile golden "$golden" \
			--argjson settings "$(if [ -f "$settings" ]; then jq -c . "$settings"; else echo '[{}]'; fi)" \
			'[$golden[0][].settings] == $settings' >/dev/null; then
			mismatches+=("$golden: its settings are not those of $settings (make goldens)")
			continue
		fi
		count=$(jq length "$golden")
		for ((index = 0; index < count; index++)); do
			cases=$((cases + 1))
			check_golden_answer "$request" "$golden" "$index" || mismatches+=("$request, settings [$index]")
		done
	done
	[ "${#mismatches[@]}" -eq 0 ] ||
		fail "${#mismatches[@]} problems in $cases cases (details above):" "${mismatches[@]}"
}

# ---------------------------------------------------------------------------
# Settings, as kwctl validates and reads them
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
		'{"unknownKey":true}|unknownKey' \
		'{"standardAnnotation":"not a key!"}|standardAnnotation' \
		'{"standardAnnotation":"sidecar-lifecycle/containers"}|standardAnnotation' \
		'{"startupProbePeriodSeconds":-1}|startupProbePeriodSeconds' \
		'{"startupProbePeriodSeconds":"5"}|startupProbePeriodSeconds' \
		'{"builtinSidecars":""}|builtinSidecars' \
		'{"builtinSidecars":["istio-proxy","envoy"]}|builtinSidecars[1]' \
		'{"builtinSidecars":["consul-dataplane-*"]}|builtinSidecars[0]' \
		'{"nativeInjection":"false"}|nativeInjection'; do
		settings=${case%|*}
		path=${case##*|}
		run kwctl run --request-path test_data/configmap-create.json --settings-json "$settings" annotated-policy.wasm
		[ "$status" -ne 0 ] || fail "kwctl accepted the invalid settings $settings: $output"
		[[ "$output" == *"Provided settings are not valid"*"$path"* ]] ||
			fail "settings $settings: the error does not name $path: $output"
	done
	# an unknown built-in sidecar: the message lists the valid ones
	run kwctl run --request-path test_data/configmap-create.json --settings-json '{"builtinSidecars":["envoy"]}' annotated-policy.wasm
	[[ "$output" == *"valid: istio-proxy, linkerd-proxy, vault-agent, cloud-sql-proxy, daprd, consul-dataplane, otc-container"* ]] ||
		fail "the error does not list the built-in sidecars: $output"
}

@test "valid settings: kwctl runs with each, and empty strings answer as the defaults" {
	local settings cleared='{"startupProbePeriodSeconds":"","legacySidecars":"","terminationGracePeriod":{"minSeconds":""}}'
	for settings in \
		'{"standardAnnotation":""}' \
		'{"standardAnnotation":"platform.example.com/keep-regular"}' \
		'{"standardAnnotation":"sidecar-lifecycle/containers","sidecarAnnotation":""}' \
		'{"startupProbePeriodSeconds":0}' \
		'{"builtinSidecars":["istio-proxy","vault-agent"]}' \
		'{"nativeInjection":false}' \
		"$cleared"; do
		run_policy test_data/istio-kube-injected-cronjob.json "$settings"
		assert_response '.allowed == true and .patchType == "JSONPatch"'
	done
	# the cleared form answers as the empty settings
	assert_answers_as_golden test_data/istio-kube-injected-cronjob.json '{}'
}

@test "settings from a file (--settings-path) are used like --settings-json" {
	printf 'legacySidecars: reject\n' >"$BATS_TEST_TMPDIR/settings.yaml"
	LAST_RUN="kwctl run --request-path test_data/istio-injected-deployment.json --settings-path settings.yaml annotated-policy.wasm"
	run bash -c 'kwctl run --request-path "$1" --settings-path "$2" annotated-policy.wasm 2>/dev/null' \
		kwctl test_data/istio-injected-deployment.json "$BATS_TEST_TMPDIR/settings.yaml"
	check_kwctl_answer
	assert_answers_as_golden test_data/istio-injected-deployment.json '{"legacySidecars":"reject"}'
}

# ---------------------------------------------------------------------------
# The example policy manifests, run as kwctl runs a policy resource: with
# mode protect and mutating true a manifest answers as the module does with
# its settings, which the goldens record
# ---------------------------------------------------------------------------

@test "examples/cluster-wide-conversion.yaml: converts istio-proxy" {
	use_example cluster-wide-conversion.yaml
	run_manifest test_data/istio-injected-deployment.json
	assert_answers_as_golden test_data/istio-injected-deployment.json '{}'
}

@test "examples/cluster-wide-conversion.yaml with mutating false: the conversion becomes a rejection" {
	use_example cluster-wide-conversion.yaml -e 's/^([[:space:]]*mutating:).*/\1 false/'
	run_manifest test_data/istio-injected-deployment.json
	assert_response '.allowed == false and .patch == null and (.status.message | contains("attempted to mutate"))'
}

@test "examples/monitor-rollout.yaml: accepted without a patch, the warnings kept" {
	use_example monitor-rollout.yaml
	run_manifest test_data/istio-injected-deployment.json
	assert_accepted_unchanged
	assert_warning istio-proxy converted
	# What the policy would reject is accepted too.
	run_manifest test_data/declared-only-pod.json
	assert_accepted_unchanged
}

@test "examples/jobs-reject-legacy-sidecars.yaml: Jobs and CronJobs with a legacy sidecar are rejected" {
	local request
	use_example jobs-reject-legacy-sidecars.yaml
	for request in test_data/cloud-sql-proxy-job.json test_data/vault-agent-cronjob.json; do
		run_manifest "$request"
		assert_response '.allowed == false'
		assert_answers_as_golden "$request" '{"legacySidecars":"reject"}'
	done
}

@test "examples/audit-legacy-sidecars.yaml: monitor mode accepts everything" {
	use_example audit-legacy-sidecars.yaml
	run_manifest test_data/istio-injected-deployment.json
	assert_accepted_unchanged
}

@test "examples/audit-legacy-sidecars.yaml in protect mode: rejects without ever attempting a mutation" {
	local request
	# Its settings make the policy validate only, as `mutating: false` needs:
	# every answer is the module's, none an attempted mutation.
	use_example audit-legacy-sidecars.yaml -e 's/^([[:space:]]*mode:).*/\1 protect/'
	grep -q 'mutating: false' "$MANIFEST" || fail "examples/audit-legacy-sidecars.yaml is expected to set mutating: false"
	for request in istio-injected-deployment native-sidecar-without-startup-probe-pod \
		istio-prestop-deployment pod-with-native-sidecar; do
		run_manifest "test_data/$request.json"
		assert_answers_as_golden "test_data/$request.json" \
			'{"legacySidecars":"reject","startupProbe":"require","terminationGracePeriod":{"onViolation":"reject"}}'
	done
}

@test "examples/namespaced-admission-policy.yaml: an AdmissionPolicy that converts fluent-bit" {
	use_example namespaced-admission-policy.yaml
	run_manifest test_data/statefulset-with-fluent-bit.json
	assert_response '.allowed == true and .patchType == "JSONPatch"'
	assert_answers_as_golden test_data/statefulset-with-fluent-bit.json \
		'{"sidecars":[{"image":"cr.fluentbit.io/fluent/fluent-bit:*"}],"standardAnnotation":"payments.example.com/regular-containers","startupProbePeriodSeconds":2,"terminationGracePeriod":{"minSeconds":45,"maxSeconds":300,"sidecarShutdownSeconds":10,"appShutdownSeconds":15,"onViolation":"adjust"}}'
}
