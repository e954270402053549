# RFC 6902 JSON Patch in jq, shared by e2e.bats and e2e-release.bats:
#
#   jq --argjson patch "$OPERATIONS" "$(cat test_data/json-patch.jq) apply_jsonpatch(\$patch)" OBJECT.json
#
# kwctl and policy-server send the JSONPatch that json_patch::diff(object,
# mutated_object) gives; the e2e tests apply it to the request's object and
# check the object that results, not the operations.

# RFC 6901 JSON Pointer -> its unescaped reference tokens.
def jp_tokens:
  if . == "" then []
  else .[1:] | split("/") | map(split("~1") | join("/") | split("~0") | join("~"))
  end;

# JSON Pointer -> jq path into the input document: tokens that index an array
# become numbers ("-" is the index just past the end).
def jp_path($pointer):
  . as $doc
  | reduce ($pointer | jp_tokens)[] as $t ([];
      . as $p
      | ($doc | getpath($p)) as $c
      | if ($c | type) == "array" then
          $p + [if $t == "-" then ($c | length)
                elif ($t | test("^(0|[1-9][0-9]*)$")) then ($t | tonumber)
                else error("JSON Patch: \($pointer): \($t) is not an array index") end]
        elif ($c | type) == "object" then $p + [$t]
        else error("JSON Patch: \($pointer): no object or array at \($p)") end);

def jp_exists($p):
  ($p | length) == 0
  or (getpath($p[:-1]) as $c | $p[-1] as $k
      | if ($c | type) == "array" then ($k | type) == "number" and $k < ($c | length)
        elif ($c | type) == "object" then $c | has($k)
        else false end);

def jp_add($p; $v):
  if ($p | length) == 0 then $v
  else getpath($p[:-1]) as $c | $p[-1] as $k
    | if ($c | type) == "array" then
        if $k > ($c | length) then error("JSON Patch: add at \($p): index out of range")
        else setpath($p[:-1]; $c[:$k] + [$v] + $c[$k:]) end
      else setpath($p; $v) end
  end;

def jp_remove($p):
  if jp_exists($p) then delpaths([$p])
  else error("JSON Patch: remove of \($p), which does not exist") end;

def jp_replace($p; $v):
  if jp_exists($p) then setpath($p; $v)
  else error("JSON Patch: replace of \($p), which does not exist") end;

# Applies a JSON Patch (RFC 6902: an array of operations, applied in order)
# to the input.
def apply_jsonpatch($patch):
  reduce $patch[] as $op (.;
    if $op.op == "add" then jp_add(jp_path($op.path); $op.value)
    elif $op.op == "remove" then jp_remove(jp_path($op.path))
    elif $op.op == "replace" then jp_replace(jp_path($op.path); $op.value)
    elif $op.op == "move" then
      jp_path($op.from) as $from | getpath($from) as $v
      | jp_remove($from) | jp_add(jp_path($op.path); $v)
    elif $op.op == "copy" then
      getpath(jp_path($op.from)) as $v | jp_add(jp_path($op.path); $v)
    elif $op.op == "test" then
      if getpath(jp_path($op.path)) == $op.value then .
      else error("JSON Patch: test failed at \($op.path)") end
    else error("JSON Patch: unknown operation \($op.op)") end);
