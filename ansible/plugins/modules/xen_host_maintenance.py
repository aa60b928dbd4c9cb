#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, migrate-live contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: xen_host_maintenance
short_description: Put a Xen host in or out of maintenance
version_added: 0.1.0
description:
  - Puts a host of a migrate-live pool in maintenance (I(state=present)) or
    takes it out (I(state=absent)), the way C(community.vmware.vmware_maintenancemode)
    does for an ESXi host.
  - A host in maintenance takes no domain from any policy move, and the
    maintenance rule of C(xl-migrate-live policy run) empties it. The flag is
    the file C(STATE_DIR/policy/maintenance/HOST) on the host where the
    policy runs (docs/policies.md); run the module there, the dom0 with the
    pool's policy file and cron job.
  - With I(evacuate=true) entering maintenance also moves every domain off
    the host now (C(xl-migrate-live policy evacuate HOST)), each to the
    compatible host with the most free memory, and the task waits for the
    moves. With I(evacuate=false) the host is only flagged
    (C(xl-migrate-live policy enter HOST)); the next policy run empties it.
  - Idempotent. The flag is read with C(xl-migrate-live policy status HOST);
    a host already flagged (and, with I(evacuate=true), with nothing left to
    move according to a dry run of the evacuation) reports C(NO_ACTION) and
    C(changed=false).
  - In check mode nothing moves and no flag changes; with I(evacuate=true)
    the planned moves are returned.
author:
  - migrate-live contributors (!UNKNOWN)
requirements:
  - C(xl-migrate-live) and the pool's policy file on the host the module runs on
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - migrate_live.xen.command
attributes:
  check_mode:
    support: full
    details: Reads the flag and plans the evacuation (C(--dry-run)); moves nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  host:
    description:
      - The host, by its C(name) in the policy file.
    type: str
    required: true
    aliases: [ name ]
  state:
    description:
      - C(present) enters maintenance, C(absent) leaves it.
    type: str
    choices: [ present, absent ]
    default: present
  evacuate:
    description:
      - With I(state=present), also move every domain off the host now and wait for the moves.
      - C(false) only flags the host; it refuses new domains at once and the
        next C(xl-migrate-live policy run) empties it.
      - Unlike vSphere's option of the same name this is about running
        domains; Xen has no registered-but-powered-off guests to move.
    type: bool
    default: true
  timeout:
    description:
      - Time limit of each move of the evacuation, in seconds (C(policy --timeout)); 0 means none.
      - A move over it is aborted, its domain keeps running on the host, and the task fails.
    type: int
    default: 0
  policy_file:
    description:
      - The pool's policy file (C(--policy-file)). The command's default is
        C(/etc/xen/migrate-live/policy.yaml).
    type: path
notes:
  - Every command runs as an argv list, never through a shell, with C(--json).
  - An evacuation that cannot place every domain moves nothing and fails;
    the host stays flagged and refuses placements (as C(policy evacuate) does).
seealso:
  - module: migrate_live.xen.xen_migrate_live
'''

EXAMPLES = r'''
- name: Empty host2 for a BIOS update
  migrate_live.xen.xen_host_maintenance:
    host: host2
    state: present
    timeout: 600
  delegate_to: "{{ policy_host }}"
  register: mm

- name: Show where its domains went
  ansible.builtin.debug:
    msg: "{{ item.domain }}: {{ item.from }} -> {{ item.to }} ({{ item.downtime_ms }} ms)"
  loop: "{{ mm.moves }}"

- name: Take host2 back
  migrate_live.xen.xen_host_maintenance:
    host: host2
    state: absent
  delegate_to: "{{ policy_host }}"

- name: Only stop placements on host3; the cron policy run drains it
  migrate_live.xen.xen_host_maintenance:
    host: host3
    evacuate: false
    policy_file: /etc/xen/migrate-live/rack3.yaml
  delegate_to: "{{ policy_host }}"
'''

RETURN = r'''
host:
  description: The host, as named in the policy file.
  returned: always
  type: str
  sample: host2
status:
  description:
    - C(ENTER) the host entered maintenance (or its evacuation was
      completed), C(EXIT) it left maintenance, C(NO_ACTION) it already was in
      the state asked for.
  returned: always
  type: str
  sample: ENTER
in_maintenance:
  description:
    - Whether the host is flagged for maintenance when the module ends (in
      check mode, whether it would be).
  returned: always
  type: bool
  sample: true
moves:
  description:
    - The moves the evacuation ran, one per domain, as the command's
      C(policy-move) lines (docs/policies.md). Empty when nothing moved.
  returned: always
  type: list
  elements: dict
  contains:
    domain:
      description: The domain moved.
      type: str
    from:
      description: The host it left.
      type: str
    to:
      description: The host it went to.
      type: str
    rule:
      description: The policy rule that planned it (C(maintenance)).
      type: str
    reason:
      description: Why this destination.
      type: str
    status:
      description: C(done), C(failed), C(in-doubt), C(skipped)...
      type: str
    exit_code:
      description: Exit status of the move, null when it was skipped.
      type: int
    downtime_ms:
      description: Measured downtime in ms.
      type: int
    time_ms:
      description: Duration of the move in ms.
      type: int
    error:
      description: Why it failed, null when done.
      type: str
  sample:
    - domain: web01
      from: host2
      to: host3
      rule: maintenance
      reason: "maintenance: host2 is in maintenance; host3 has 30720 MiB free for 4096 MiB"
      status: done
      exit_code: 0
      downtime_ms: 87
      time_ms: 4210
      error: null
planned_moves:
  description: In check mode with I(evacuate=true), the moves an evacuation would run.
  returned: when planned
  type: list
  elements: dict
msg:
  description: What happened, or why the task failed.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.migrate_live.xen.plugins.module_utils.xl_migrate_live import (
    EXIT_MEANING, EXIT_OK, EXIT_USAGE, XlMigrateLive, command_argument_spec, json_lines,
    last_line)


class Maintenance(object):
    """The policy subcommands of one host."""

    def __init__(self, module):
        self.module = module
        self.xl = XlMigrateLive(module)
        self.host = module.params['host']

    def argv(self, *words):
        params = self.module.params
        argv = self.xl.base_argv()
        if params.get('policy_file'):
            argv += ['--policy-file', params['policy_file']]
        return argv + ['--json'] + list(words)

    def run(self, argv, **extra):
        rc, out, err = self.xl.run(argv)
        if rc == EXIT_USAGE:
            self.module.fail_json(msg='xl-migrate-live policy refused the request (exit %d): %s'
                                  % (rc, last_line(err) or last_line(out)),
                                  host=self.host, status='NO_ACTION', moves=[], rc=rc,
                                  stderr=err, **extra)
        return rc, json_lines(out), err

    def flagged(self):
        rc, lines, err = self.run(self.argv('policy', 'status', self.host))
        for obj in lines:
            if obj.get('event') == 'policy-status' and obj.get('host') == self.host:
                return bool(obj.get('maintenance'))
        self.module.fail_json(msg='cannot read the maintenance flag of %s (exit %d): %s'
                              % (self.host, rc, last_line(err)), host=self.host,
                              status='NO_ACTION', moves=[], in_maintenance=None)

    def plan(self, in_maintenance):
        """The moves a dry run of the evacuation plans."""
        rc, lines, err = self.run(self.argv('--dry-run', 'policy', 'evacuate', self.host))
        plans = [o for o in lines if o.get('event') == 'policy-plan']
        if not plans:
            self.module.fail_json(msg='cannot plan the evacuation of %s (exit %d): %s'
                                  % (self.host, rc, last_line(err)), host=self.host,
                                  status='NO_ACTION', moves=[], in_maintenance=in_maintenance)
        return plans[-1]

    def set_flag(self, flagged, want, subcommand, status, would, did):
        """Set or clear the flag alone (policy enter / restore); ends the module."""
        host = self.host
        if flagged == want:
            self.done(False, 'NO_ACTION', want, '%s is %s in maintenance'
                      % (host, 'already' if want else 'not'))
        if self.module.check_mode:
            self.done(True, status, want, '%s would %s' % (host, would))
        rc, lines, err = self.run(self.argv('policy', subcommand, host))
        if rc != EXIT_OK:
            self.module.fail_json(msg='cannot %s %s (exit %d): %s'
                                  % (would.split(' (')[0], host, rc, last_line(err)),
                                  host=host, status='NO_ACTION', moves=[], in_maintenance=flagged)
        self.done(True, status, want, '%s %s' % (host, did))

    def done(self, changed, status, in_maintenance, msg, moves=None, **extra):
        self.module.exit_json(changed=changed, host=self.host, status=status,
                              in_maintenance=in_maintenance, moves=moves or [], msg=msg, **extra)


def main():
    spec = command_argument_spec()
    spec.update(
        host=dict(type='str', required=True, aliases=['name']),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        evacuate=dict(type='bool', default=True),
        timeout=dict(type='int', default=0),
        policy_file=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    if params['timeout'] < 0:
        module.fail_json(msg='timeout must be 0 (none) or a number of seconds, not %d'
                         % params['timeout'])
    m = Maintenance(module)
    host = m.host
    flagged = m.flagged()

    if params['state'] == 'absent':
        m.set_flag(flagged, False, 'restore', 'EXIT', 'leave maintenance',
                   'left maintenance and takes placements again')
    if not params['evacuate']:
        m.set_flag(flagged, True, 'enter', 'ENTER', 'enter maintenance (nothing moves now)',
                   'is in maintenance; the next policy run empties it')

    plan = m.plan(flagged)
    planned = plan.get('moves') or []
    if plan.get('status') == 'impossible':
        module.fail_json(msg='cannot evacuate %s: %s; nothing was moved%s'
                         % (host, plan.get('why'),
                            '' if module.check_mode else ' and the host was left as it was'),
                         host=host, status='NO_ACTION', moves=[], planned_moves=planned,
                         in_maintenance=flagged)
    if flagged and not planned:
        m.done(False, 'NO_ACTION', True, '%s is already in maintenance and empty' % host)
    if module.check_mode:
        m.done(True, 'ENTER', True, '%s would enter maintenance; %d domain%s would move'
               % (host, len(planned), '' if len(planned) == 1 else 's'), planned_moves=planned)

    words = ['policy', 'evacuate', host]
    if params['timeout']:
        words = ['--timeout', str(params['timeout'])] + words
    rc, lines, err = m.run(m.argv(*words))
    moves = [dict((k, v) for k, v in o.items() if k != 'event')
             for o in lines if o.get('event') == 'policy-move']
    after = m.flagged()
    if rc == EXIT_OK:
        m.done(True, 'ENTER', after, '%s entered maintenance; %d domain%s moved'
               % (host, len(moves), '' if len(moves) == 1 else 's'), moves=moves)
    failed = [x for x in moves if x.get('status') != 'done']
    why = '; '.join('%s: %s (%s)' % (x.get('domain'), x.get('status'), x.get('error'))
                    for x in failed) or last_line(err)
    module.fail_json(msg='evacuating %s %s (exit %d): %s. The host stays in maintenance; '
                     'a domain whose move did not finish still runs on it%s'
                     % (host, EXIT_MEANING.get(rc, 'failed'), rc, why,
                        ' (in doubt: run "xl-migrate-live resolve DOMAIN" on %s)' % host
                        if rc == 5 else ''),
                     host=host, status='ENTER', moves=moves, in_maintenance=after, rc=rc,
                     stderr=err)


if __name__ == '__main__':
    main()
