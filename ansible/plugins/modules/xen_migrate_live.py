#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, migrate-live contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: xen_migrate_live
short_description: Live-migrate a Xen domain to another host
version_added: 0.1.0
description:
  - Moves a running Xen domain to another host with C(xl-migrate-live DOMAIN HOST),
    the way C(community.vmware.vmware_vmotion) moves a virtual machine.
  - Run it on the host the domain runs on (for example with C(delegate_to)).
  - The domain either runs on the destination afterwards, or keeps running on
    this host unchanged; the result says which (I(running_host)).
  - Idempotent. The module first looks for the domain in this host's facts
    (C(xl-migrate-live facts)) and in the destination's (I(destination_command)
    followed by C(facts)). A domain the destination already runs is not moved
    and the task reports C(changed=false).
  - In check mode only the compatibility pre-flight runs (C(--check)); nothing moves.
author:
  - migrate-live contributors (!UNKNOWN)
requirements:
  - C(xl-migrate-live) on this host and on the destination
  - a receiver on the destination for the transport used (C(xl-migrate-live listen) for
    C(tls:) and C(tcp:), C(xl-migrate-live receive) over ssh)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - migrate_live.xen.command
  - migrate_live.xen.command.domain
  - migrate_live.xen.command.migration
attributes:
  check_mode:
    support: full
    details: Runs the compatibility pre-flight against the destination; nothing moves.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  destination_command:
    description:
      - The argv that runs C(xl-migrate-live) on the destination host, to
        which the module appends C(facts) to learn whether the destination
        already runs the domain. The same thing as C(exec) in a policy file
        (docs/policies.md).
      - Defaults to C([ssh, -o, BatchMode=yes, HOST, xl-migrate-live]), HOST
        being the host part of I(destination).
      - A C(unix:) destination has no host to ask; give it here or the check
        is skipped (the module then moves whatever runs here).
    type: list
    elements: str
  downtime_ms:
    description:
      - Downtime target in milliseconds (C(--downtime)). The command's default is 300.
    type: int
  bandwidth:
    description:
      - Bandwidth limit (C(--bandwidth)), for example C(500M), C(1GB/s), C(800Mbit).
      - Unlimited when not set.
    type: str
  parallel:
    description:
      - Data channels (C(--parallel)), 1 to 16; C(tls:) and C(tcp:) only.
    type: int
  compress:
    description:
      - Compress page batches (C(--compress)).
    type: str
    choices: [ none, zstd ]
  timeout:
    description:
      - Time limit of the whole move in seconds (C(--timeout)); 0 means none.
      - What happens when it is reached is I(on_timeout).
    type: int
    default: 0
  on_timeout:
    description:
      - C(abort) stops the move and the domain keeps running here;
        C(switchover) stops and copies whatever is still dirty (longer downtime).
    type: str
    choices: [ abort, switchover ]
    default: abort
notes:
  - Every command runs as an argv list, never through a shell, with
    C(--json); the module reads the final C(report) line (docs/json-output.md).
  - Exit 5 (in doubt) means COMMIT was sent but not acknowledged; the copy on
    this host stays paused. The task fails with I(running_host=null); run
    C(xl-migrate-live resolve DOMAIN) here to settle it.
seealso:
  - module: migrate_live.xen.xen_migrate_check
  - module: migrate_live.xen.xen_host_maintenance
'''

EXAMPLES = r'''
- name: Move web01 to host2 over TLS with two channels
  migrate_live.xen.xen_migrate_live:
    name: web01
    destination: tls:host2.example:8002
    parallel: 2
    downtime_ms: 100
  delegate_to: host1.example

- name: Move a domain by uuid, limited to 800 Mbit/s and five minutes
  migrate_live.xen.xen_migrate_live:
    uuid: 5b9c3f0e-6a1f-4d1e-9a57-3e1c2b8d7f10
    destination: host3
    transport: tls
    bandwidth: 800Mbit
    timeout: 300
    profile: xeon-v4
  delegate_to: host1.example

- name: Would the move work? (pre-flight only)
  migrate_live.xen.xen_migrate_live:
    name: db01
    destination: host2
  check_mode: true
  delegate_to: host1.example

- name: Destination reached over a jump host for the idempotency check
  migrate_live.xen.xen_migrate_live:
    name: web02
    destination: tcp:10.0.0.12:8002
    psk_file: /etc/migrate-live/psk
    destination_command: [ssh, -J, bastion, root@host2, xl-migrate-live]
  delegate_to: host1.example
'''

RETURN = r'''
running_host:
  description:
    - Where the domain runs now. The I(destination) after a move or when it
      already ran there; on failure the name of this host (the domain runs
      here, unchanged); null when the move is in doubt.
  returned: always
  type: str
  sample: tls:host2.example:8002
downtime_ms:
  description: Measured downtime in ms, from suspend to the destination's commit acknowledgement.
  returned: when a move ran
  type: int
  sample: 87
total_time_s:
  description: Duration of the move in seconds.
  returned: when a move ran
  type: float
  sample: 4.21
bytes_sent:
  description: Payload sent (page data and zero runs), in bytes.
  returned: when a move ran
  type: int
  sample: 1073741824
wire_bytes:
  description: Everything written to the transports, headers included, in bytes.
  returned: when a move ran
  type: int
  sample: 1075000000
rounds:
  description: Pre-copy rounds, the full first copy and the final stop-and-copy round included.
  returned: when a move ran
  type: int
  sample: 4
status:
  description:
    - C(done), C(failed), C(cancelled), C(in-doubt), C(incompatible), C(locked)
      (the command's report), C(present) when the destination already runs
      the domain, C(compatible) in check mode.
  returned: always
  type: str
  sample: done
exit_code:
  description: Exit status of C(xl-migrate-live) (docs/json-output.md).
  returned: when a move or pre-flight ran
  type: int
  sample: 0
report:
  description: The command's final C(report) JSON object, every key of docs/json-output.md.
  returned: when a move ran
  type: dict
preflight:
  description:
    - The pre-flight verdict (C(compatible), C(errors), C(warnings), C(issues)).
  returned: in check mode, and when the move was refused as incompatible
  type: dict
  sample:
    compatible: false
    errors: 1
    warnings: 0
    issues:
      - severity: error
        kind: cpu-feature
        subject: avx512f
        message: the guest uses CPU feature avx512f (leaf 0x7 subleaf 0 ebx bit 16), which the destination does not have
msg:
  description: What happened, or why the task failed.
  returned: always
  type: str
  sample: web01 moved to host2 in 4.21 s, 87 ms downtime
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.migrate_live.xen.plugins.module_utils.xl_migrate_live import (
    DOMAIN_CHOICE, EXIT_INCOMPAT, EXIT_INDOUBT, EXIT_LOCKED, EXIT_MEANING, EXIT_OK,
    XlMigrateLive, command_argument_spec, destination_host, domain_argument, domain_argument_spec,
    domain_label, find_domain, json_lines, migration_argument_spec)


def where_is(xl, params):
    """(here, there, warning): is the domain in this host's facts, in the
    destination's? 'there' is None when the destination cannot be asked, or
    for a domid, which means nothing there."""
    facts, err = xl.facts()
    if facts is None:
        xl.module.fail_json(msg='cannot read this host\'s facts: %s' % err,
                            running_host=None, status='failed')
    here = find_domain(facts, params) is not None
    if params.get('domid') is not None:
        # the destination's domain with that id is another domain
        return here, None, None
    prefix = params.get('destination_command')
    if prefix is None:
        host = destination_host(params['destination'])
        if host is None:
            return here, None, 'the destination %s has no host to ask (unix:); ' \
                'give destination_command to check it' % params['destination']
        prefix = ['ssh', '-o', 'BatchMode=yes', host, 'xl-migrate-live']
    dfacts, err = xl.facts(prefix)
    if dfacts is None:
        return here, None, 'cannot ask the destination: %s' % err
    return here, find_domain(dfacts, params) is not None, None


def check_only(xl, params):
    """Run the pre-flight; (rc, the --check JSON object or None, stdout, stderr)."""
    argv = xl.migration_argv() + ['--check', '--json', domain_argument(params),
                                  params['destination']]
    rc, out, err = xl.run(argv)
    objs = [o for o in json_lines(out) if 'check' in o]
    return rc, (objs[-1] if objs else None), out, err


def move_argv(xl, params):
    argv = xl.migration_argv()
    if params.get('downtime_ms') is not None:
        argv += ['--downtime', str(params['downtime_ms'])]
    if params.get('bandwidth'):
        argv += ['--bandwidth', params['bandwidth']]
    if params.get('parallel') is not None:
        argv += ['--parallel', str(params['parallel'])]
    if params.get('compress'):
        argv += ['--compress', params['compress']]
    if params.get('timeout'):
        argv += ['--timeout', str(params['timeout']), '--on-timeout', params['on_timeout']]
    return argv + ['--json', domain_argument(params), params['destination']]


def main():
    spec = command_argument_spec()
    spec.update(domain_argument_spec())
    spec.update(migration_argument_spec())
    spec.update(
        destination_command=dict(type='list', elements='str'),
        downtime_ms=dict(type='int'),
        bandwidth=dict(type='str'),
        parallel=dict(type='int'),
        compress=dict(type='str', choices=['none', 'zstd']),
        timeout=dict(type='int', default=0),
        on_timeout=dict(type='str', choices=['abort', 'switchover'], default='abort'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           mutually_exclusive=DOMAIN_CHOICE, required_one_of=DOMAIN_CHOICE)
    params = module.params
    label = domain_label(params)
    dest = params['destination']
    if params.get('timeout') is not None and params['timeout'] < 0:
        module.fail_json(msg='timeout must be 0 (none) or a number of seconds, not %d'
                         % params['timeout'], running_host=None, status='failed')
    xl = XlMigrateLive(module)

    here, there, warning = where_is(xl, params)
    if warning:
        module.warn(warning)
    if there:
        module.exit_json(changed=False, running_host=dest, status='present',
                         msg='%s already runs on %s' % (label, dest))
    if not here:
        if params.get('domid') is not None:
            why = 'domain ids are per host, so whether it moved cannot be told; use name or uuid'
        elif there is None:
            why = 'and the destination could not be asked'
        else:
            why = 'nor on %s' % dest
        module.fail_json(msg='%s does not run on this host, %s' % (label, why),
                         running_host=None, status='failed')

    if module.check_mode:
        rc, chk, out, err = check_only(xl, params)
        if chk is None:
            xl.usage_failure('pre-flight of %s to %s' % (label, dest), rc, out, err,
                             running_host=None, status='failed')
        pre = chk.get('preflight')
        if rc == EXIT_OK:
            module.exit_json(changed=True, running_host=None, status='compatible', exit_code=rc,
                             preflight=pre, msg='%s would move to %s (pre-flight: compatible)'
                             % (label, dest))
        module.fail_json(msg='%s cannot move to %s: %s' % (label, dest, chk.get('error')),
                         running_host=None, status=chk.get('check'), exit_code=rc, preflight=pre)

    rc, out, err = xl.run(move_argv(xl, params))
    reports = [o for o in json_lines(out) if o.get('event') == 'report']
    if not reports:
        xl.usage_failure('moving %s to %s' % (label, dest), rc, out, err,
                         running_host=None, status='failed')
    rep = reports[-1]
    figures = dict(downtime_ms=rep.get('downtime_ms'),
                   total_time_s=round(rep.get('total_time_ms', 0) / 1000.0, 3),
                   bytes_sent=rep.get('transferred_bytes'), wire_bytes=rep.get('wire_bytes'),
                   rounds=rep.get('round'), status=rep.get('status'), exit_code=rc, report=rep)
    if rc == EXIT_OK:
        module.exit_json(changed=True, running_host=dest,
                         msg='%s moved to %s in %.2f s, %s ms downtime'
                         % (label, dest, figures['total_time_s'], rep.get('downtime_ms')),
                         **figures)
    running = rep.get('running_host')
    # the first line: an incompatible move's error carries the whole verdict,
    # which 'preflight' returns structured
    error = (rep.get('error') or 'no reason given').splitlines()[0]
    if rc == EXIT_INDOUBT:
        msg = ('moving %s to %s is in doubt: COMMIT was sent but not acknowledged; the copy on '
               'this host is paused. Run "xl-migrate-live resolve %s" here to settle it (%s)'
               % (label, dest, domain_argument(params), error))
    elif rc == EXIT_LOCKED:
        msg = ('%s is locked by another migration or policy run; nothing moved, it still runs '
               'on %s' % (label, running))
    else:
        msg = ('moving %s to %s %s (exit %d): %s; %s still runs on %s, unchanged'
               % (label, dest, EXIT_MEANING.get(rc, 'failed'), rc, error, label, running))
    extra = {}
    if rc == EXIT_INCOMPAT:
        # the report carries the verdict as text; fetch it structured
        _rc, chk, _out, _err = check_only(xl, params)
        if chk is not None:
            extra['preflight'] = chk.get('preflight')
    module.fail_json(msg=msg, running_host=running, stderr=err, **dict(figures, **extra))


if __name__ == '__main__':
    main()
