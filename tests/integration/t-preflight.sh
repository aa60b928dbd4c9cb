#!/bin/bash
# The compatibility pre-flight between live hosts: --check passes between
# identical hosts; a destination lacking a CPU feature the guest uses is
# refused before any page moves, naming the feature (exit 3), and so is the
# migration itself; the source keeps running.
. "$(dirname "$0")/lib.sh"
start_host a
start_host b --listen
create_guest a g 64M "dirty=10M"
check() { # expected-exit args...
    local want=$1 rc=0
    shift
    "$XLML" --host "$(host_dir a)" --state-dir "$(host_dir a)" --psk "$T/key" "$@" sim:g \
        "$(dest_uri b)" >"$T/check.out" 2>"$T/check.err" || rc=$?
    [ "$rc" -eq "$want" ] || fail "$* : exit $rc, expected $want: $(cat "$T/check.out" "$T/check.err")"
}
check 0 --check
grep -q "^compatible" "$T/check.out" || fail "no verdict: $(cat "$T/check.out")"
# a guest that sees the whole host CPU is outside the x86-64-v2 baseline...
check 3 --check --profile "$top_srcdir/configs/profiles/x86-64-v2.yaml"
grep -q "outside profile x86-64-v2" "$T/check.out" || fail "baseline: $(head -5 "$T/check.out")"
# ...one booted inside it (its CPUID as 'profile render' gives) is not
python3 - "$(host_dir a)/guest-g.json" <<'PY'
import json, sys
v2 = ["fpu", "tsc", "cx8", "cmov", "mmx", "fxsr", "sse", "sse2", "sse3", "ssse3", "cx16",
      "sse4_1", "sse4_2", "popcnt", "lahf_lm", "syscall", "nx", "lm"]
json.dump({"name": "g", "mem_bytes": 64 << 20, "max_mem_bytes": 64 << 20, "vcpus": 1,
           "cpu_features": v2, "passthrough": False, "nested_hvm": False, "pod": False},
          open(sys.argv[1], "w"))
PY
# test-guest hosts have no Xen: describe both as Xen 4.17 hosts (facts.json)
for h in a b; do
    "$XLML" --host "$(host_dir $h)" facts | python3 -c '
import json, sys
f = json.load(sys.stdin)
f.update(xen_version="4.17.0", virt_caps=["hvm", "hap", "pv", "hvm_directio"])
json.dump(f, open(sys.argv[1], "w"))' "$(host_dir $h)/facts.json.new"
done
for h in a b; do mv "$(host_dir $h)/facts.json.new" "$(host_dir $h)/facts.json"; done
check 0 --check --profile "$top_srcdir/configs/profiles/x86-64-v2.yaml"
rm "$(host_dir a)/guest-g.json" "$(host_dir a)/facts.json" "$(host_dir b)/facts.json"

# host b loses a feature this CPU has (and the guest therefore uses)
"$XLML" --host "$(host_dir b)" facts | python3 -c '
import json, sys
f = json.load(sys.stdin)
have = f["cpu"]["features"]
gone = next(x for x in ("sse4_2", "popcnt", "ssse3", "sse3") if x in have)
have.remove(gone)
json.dump(f, open(sys.argv[1], "w"))
print(gone)' "$(host_dir b)/facts.json" >"$T/gone"
gone=$(cat "$T/gone")
check 3 --check
grep -qiE "${gone//_/[-_.]}" "$T/check.out" || fail "the verdict does not name $gone: $(cat "$T/check.out")"
check 3 --json --check
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["check"]=="incompatible" and o["exit_code"]==3, o' "$T/check.out"
# the migration itself is refused the same way, before round 0
migrate a g b
[ "$MIG_RC" -eq 3 ] || fail "migration to an incompatible host: exit $MIG_RC, expected 3"
assert_running_on a g
assert_absent b g
echo "refused, naming $gone: $(grep -iE "${gone//_/[-_.]}" "$T/check.out" | head -1 | cut -c1-120)"
