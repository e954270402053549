#!/usr/bin/env bash
# Builds the seed corpora of the fuzz targets from test_data/:
#   fuzz/corpus/validate/           {"request": <fixture>, "settings": {...}} payloads,
#                                   each fixture under the default and a few other settings
#   fuzz/corpus/validate_settings/  the settings of those payloads, and some invalid ones
# Needs jq. Run from anywhere; the corpora are gitignored.
set -euo pipefail

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
test_data="$fuzz_dir/../test_data"
validate="$fuzz_dir/corpus/validate"
settings_dir="$fuzz_dir/corpus/validate_settings"
mkdir -p "$validate" "$settings_dir"

command -v jq >/dev/null 2>&1 || { echo "seed-corpus.sh needs jq" >&2; exit 1; }

settings_list=(
  '{}'
  '{"legacySidecars":"reject","startupProbe":"require"}'
  '{"legacySidecars":"warn","builtinSidecars":false,"sidecarAnnotation":""}'
  '{"sidecars":[{"name":"fluent-bit"},{"image":"envoyproxy/*"}],"setupInitContainers":["*-net-setup"]}'
  '{"startupProbeWindowSeconds":0,"terminationGracePeriod":{"minSeconds":20,"maxSeconds":60,"sidecarShutdownSeconds":2,"appShutdownSeconds":10,"onViolation":"reject"}}'
)
invalid_settings=(
  '[]'
  '{"unknown":1}'
  '{"sidecars":[{}]}'
  '{"sidecars":[{"name":"[a-z]*"}]}'
  '{"terminationGracePeriod":{"minSeconds":90,"maxSeconds":60}}'
  '{"sidecarAnnotation":"Not/A Key"}'
  '{"startupProbeWindowSeconds":-1}'
)

count=0
for fixture in "$test_data"/*.json; do
  case "$fixture" in *.settings.json | *.golden.json) continue ;; esac
  name="$(basename "$fixture" .json)"
  for i in "${!settings_list[@]}"; do
    jq -c --argjson settings "${settings_list[$i]}" '{request: ., settings: $settings}' \
      "$fixture" >"$validate/$name-$i.json"
    count=$((count + 1))
  done
done
for i in "${!settings_list[@]}"; do
  printf '%s' "${settings_list[$i]}" >"$settings_dir/valid-$i.json"
done
for i in "${!invalid_settings[@]}"; do
  printf '%s' "${invalid_settings[$i]}" >"$settings_dir/invalid-$i.json"
done
echo "wrote $count payloads to $validate and $(ls "$settings_dir" | wc -l) settings to $settings_dir"
