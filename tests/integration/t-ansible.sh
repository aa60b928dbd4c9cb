#!/bin/bash
# tracking: irrelevant (the modules drive the command; how guest writes are tracked is covered by the migration tests)
# The Ansible collection migrate_live.xen (ansible/) for real: built and
# installed with ansible-galaxy, its modules' documentation rendered by
# ansible-doc, then ansible-playbook against localhost drives the playbooks
# of tests/ansible/ on three test-guest hosts: a live migration (changed),
# the same again (not changed), check mode (nothing moves), the pre-flight
# with every incompatibility, bad options and a closed destination (clear
# failures saying where the guest runs), a locked domain, and maintenance
# enter/exit with and without evacuation, and with moves over their time
# limit. After each playbook the hosts are asked directly where every guest
# runs, and moved guests verify their memory.
. "$(dirname "$0")/lib.sh"
# Debian's ansible-core, and what its validate-modules sanity test and
# pyflakes need (setup.sh deps installs them too). Debian's own python runs
# them: ansible lives in its dist-packages.
PY=/usr/bin/python3
if ! command -v ansible-playbook >/dev/null || ! $PY -c 'import voluptuous, pyflakes' 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ansible-core \
        python3-voluptuous python3-pyflakes >"$T/apt.log" 2>&1 ||
        fail "cannot install ansible-core: $(tail -3 "$T/apt.log")"
fi
coll=$top_srcdir/ansible
M=$((1024 * 1024))

# the modules' code: compiles, no unused names, and never runs a shell
PYTHONPYCACHEPREFIX=$T/pycache $PY -m py_compile "$coll"/plugins/modules/*.py \
    "$coll"/plugins/module_utils/*.py "$coll"/plugins/doc_fragments/*.py || fail "py_compile"
$PY -m pyflakes "$coll/plugins" >"$T/pyflakes.out" 2>&1 || fail "pyflakes: $(cat "$T/pyflakes.out")"
if grep -rnE 'shell=True|use_unsafe_shell=True|os\.system|subprocess' "$coll/plugins"; then
    fail "the modules must run argv lists through module.run_command"
fi

# build and install the collection as a user would
export ANSIBLE_HOME=$T/ansible-home ANSIBLE_LOCAL_TEMP=$T/ansible-tmp ANSIBLE_REMOTE_TMP=$T/ansible-tmp
export ANSIBLE_COLLECTIONS_PATH=$T/collections ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0
export ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3
# a copy: the build must not write into the source tree (read-only in distcheck)
cp -r "$coll" "$T/src-collection"
find "$T/src-collection" -name __pycache__ -prune -exec rm -rf {} +
ansible-galaxy collection build "$T/src-collection" --output-path "$T" >"$T/galaxy.out" 2>&1 ||
    fail "collection build: $(cat "$T/galaxy.out")"
ansible-galaxy collection install -p "$T/collections" "$T"/migrate_live-xen-*.tar.gz >>"$T/galaxy.out" 2>&1 ||
    fail "collection install: $(cat "$T/galaxy.out")"
[ -f "$T/collections/ansible_collections/migrate_live/xen/plugins/modules/xen_migrate_live.py" ] ||
    fail "the collection is not where ANSIBLE_COLLECTIONS_PATH looks"

# ansible-test's validate-modules (documentation schema, argument spec
# against the documented options); ansible-test itself would fetch its
# requirements from the network, so its checker runs directly
vm=$($PY -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_util/controller/sanity
inst=$T/collections/ansible_collections/migrate_live/xen
(cd "$inst" && PYTHONPATH="$vm/validate-modules:$vm/../../target/sanity:$vm" \
    $PY "$vm/validate-modules/validate.py" --format plain --arg-spec \
    --collection ansible_collections/migrate_live/xen --collection-version 0.1.0 \
    plugins/modules/*.py) >"$T/validate-modules.out" 2>&1 ||
    fail "validate-modules: $(cat "$T/validate-modules.out")"

# every module's documentation renders, without a warning
for m in xen_migrate_live xen_migrate_check xen_host_maintenance; do
    ansible-doc "migrate_live.xen.$m" >"$T/doc-$m.out" 2>"$T/doc-$m.err" ||
        fail "ansible-doc $m: $(cat "$T/doc-$m.err")"
    [ ! -s "$T/doc-$m.err" ] || fail "ansible-doc $m warns: $(cat "$T/doc-$m.err")"
    m_up=$(echo "$m" | tr a-z A-Z)
    grep -q "^> MIGRATE_LIVE.XEN.$m_up " "$T/doc-$m.out" || fail "ansible-doc $m: no header"
    for section in "OPTIONS" "EXAMPLES:" "RETURN VALUES:"; do
        grep -q "^$section" "$T/doc-$m.out" || fail "ansible-doc $m: no $section"
    done
    ansible-doc --json "migrate_live.xen.$m" | python3 -c '
import json, sys
d = json.load(sys.stdin)[sys.argv[1]]
assert d["doc"]["options"] and d["examples"] and d["return"], sys.argv[1]' "migrate_live.xen.$m" ||
        fail "ansible-doc --json $m"
done
grep -q "changed=false" "$T/doc-xen_migrate_live.out" || fail "the idempotency rule is not documented"
# the collection's example playbooks are valid playbooks
ansible-playbook --syntax-check -i localhost, "$coll"/examples/*.yml >"$T/examples.out" 2>&1 ||
    fail "examples: $(cat "$T/examples.out")"

for h in a b c; do start_host $h --listen; done
create_guest a g1 64M "dirty=10M"
create_guest a g2 64M "dirty=5M"
create_guest b g3 48M "dirty=5M"
create_guest c g4 32M "dirty=1M"

vars() { # the paths the playbooks need
    python3 - "$@" <<PY
import json
d = {"xlml": "$XLML", "top": "$top_srcdir", "key": "$T/key",
     "policy_file": "$T/policy.yaml", "slow_policy_file": "$T/policy-slow.yaml",
     "policy_state": "$T/policy-state", "closed_uri": "tcp:127.0.0.1:$(free_port)"}
for h in "abc":
    d[h] = {"dir": "$T/host-" + h, "uri": "tcp:127.0.0.1:" + {"a": "$PORT_a", "b": "$PORT_b", "c": "$PORT_c"}[h]}
json.dump(d, open("$T/vars.json", "w"))
PY
}
vars
play() {
    ansible-playbook -i localhost, -c local -e "@$T/vars.json" "$top_srcdir/tests/ansible/$1" \
        >"$T/play-$1.out" 2>&1 || fail "ansible-playbook $1: $(grep -B2 -A25 -E 'FAILED!|ERROR!' "$T/play-$1.out" | head -60)"
    grep -E '^localhost +:' "$T/play-$1.out"
}

play migrate.yml
grep -qE 'localhost +: ok=[0-9]+ +changed=[1-9]' "$T/play-migrate.yml.out" || fail "no change recorded"
# what the playbook claimed, asked of the hosts themselves
wait_verified b g1
assert_absent a g1
assert_running_on a g2
assert_absent b g2

# another run holds g2's lock (STATE/locks/DOMAIN-URI.lock, '/' as '_')
lockf="$(host_dir a)/locks/$(echo "sim:g2,host=$(host_dir a)" | tr / _).lock"
python3 -c 'import fcntl,sys,time; f=open(sys.argv[1],"w"); fcntl.flock(f,fcntl.LOCK_EX); print("held",flush=True); time.sleep(60)' \
    "$lockf" >"$T/holder.out" &
holder=$!
for _ in $(seq 50); do grep -q held "$T/holder.out" && break; sleep 0.1; done
play locked.yml
kill $holder
wait $holder 2>/dev/null || true
assert_running_on a g2
assert_absent b g2

# a pool of the three hosts: facts with the planner's keys, a policy file
# whose exec argv runs this build on each host
for h in a b c; do
    "$XLML" --host "$(host_dir $h)" facts | python3 -c '
import json, sys
f = json.load(sys.stdin)
f.pop("domains", None)
f.update(mem_total_bytes=int(sys.argv[2]), cpus=4, cpu_vendor="GenuineIntel")
json.dump(f, open(sys.argv[1], "w"))' "$(host_dir $h)/facts.json" $((512 * M))
done
policy_file ansible-test "" >"$T/policy.yaml"
policy_file ansible-test ", --bandwidth, 4M" >"$T/policy-slow.yaml"

play maintenance.yml
assert_absent b g1
assert_absent b g3
for g in g1 g3; do
    if guest_exists a $g; then wait_verified a $g; else wait_verified c $g; fi
done
assert_running_on a g2
assert_running_on c g4

# moves over their time limit: aborted, the domains stay where they were
play maintenance-timeout.yml
assert_running_on a g2
assert_running_on a g3
assert_absent b g2
assert_absent c g3
if ls "$T/policy-state/policy/maintenance" | grep .; then fail "a host was left in maintenance"; fi
echo "ansible: $(grep -hE '^localhost' "$T"/play-*.out | tr -s ' ' | paste -sd' ')"
