#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, migrate-live contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: xen_migrate_check
short_description: Check whether a Xen domain can live-migrate to a host
version_added: 0.1.0
description:
  - Runs the compatibility pre-flight of C(xl-migrate-live) alone
    (C(xl-migrate-live --check --json DOMAIN HOST)) and returns every
    incompatibility found, not just the first.
  - The pre-flight connects to the destination's receiver and compares both
    hosts' facts and the domain's needs (CPU vendor and features, Xen version,
    virtualization capabilities, memory, bridges, disks, passthrough), under a
    compatibility I(profile) when one is given (docs/profiles.md).
  - Nothing moves and nothing changes; the task never reports C(changed).
  - An incompatible destination is a result (I(compatible=false)), not a task
    failure; the task fails when the check cannot run (domain not on this
    host, destination unreachable, unknown profile).
author:
  - migrate-live contributors (!UNKNOWN)
requirements:
  - C(xl-migrate-live) on this host and a receiver on the destination
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - migrate_live.xen.command
  - migrate_live.xen.command.domain
  - migrate_live.xen.command.migration
attributes:
  check_mode:
    support: full
    details: The module changes nothing; it runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it on the host the domain runs on (for example with C(delegate_to)).
  - The command runs as an argv list, never through a shell.
seealso:
  - module: migrate_live.xen.xen_migrate_live
'''

EXAMPLES = r'''
- name: Can web01 move to host2 within the pool's profile?
  migrate_live.xen.xen_migrate_check:
    name: web01
    destination: tls:host2.example:8002
    profile: xeon-v4
  delegate_to: host1.example
  register: chk

- name: Stop the rollout when it cannot
  ansible.builtin.fail:
    msg: "{{ chk.issues | selectattr('severity', 'eq', 'error') | map(attribute='message') | list }}"
  when: not chk.compatible
'''

RETURN = r'''
compatible:
  description: Whether the domain can move to the destination.
  returned: always
  type: bool
  sample: false
issues:
  description:
    - Every finding of the pre-flight, errors and warnings (docs/profiles.md).
  returned: always
  type: list
  elements: dict
  contains:
    severity:
      description: C(error) (refuses the move) or C(warning).
      type: str
      sample: error
    kind:
      description:
        - C(cpu-feature), C(profile-baseline), C(cpu-vendor), C(xen-version), C(virt-cap),
          C(tsc-scaling), C(passthrough), C(nested-hvm), C(populate-on-demand), C(memory),
          C(bridge), C(disk) or C(facts).
      type: str
      sample: cpu-feature
    subject:
      description: The feature, bridge, disk, version... the finding is about.
      type: str
      sample: avx512f
    cpuid:
      description: For CPU features, the CPUID leaf, subleaf, register and bit; null otherwise.
      type: dict
    rule:
      description: The rule or fact that decided.
      type: str
    message:
      description: The finding as a sentence.
      type: str
  sample:
    - severity: error
      kind: cpu-feature
      subject: avx512f
      cpuid: {feature: avx512f, leaf: 7, subleaf: 0, register: ebx, bit: 16}
      rule: "fact: guest.cpu_features must be a subset of the destination's cpu.features"
      message: the guest uses CPU feature avx512f (leaf 0x7 subleaf 0 ebx bit 16), which the destination does not have
errors:
  description: Number of findings that refuse the move.
  returned: always
  type: int
  sample: 1
warnings_count:
  description: Number of findings that only warn.
  returned: always
  type: int
  sample: 0
verdict:
  description: The same verdict as text, one finding per line.
  returned: always
  type: str
destination:
  description: The destination as the command resolved it (a transport URI).
  returned: always
  type: str
  sample: tls:host2.example:8002
profile:
  description: The profile checked against, null without one.
  returned: always
  type: str
exit_code:
  description: Exit status of C(xl-migrate-live --check), 0 compatible or 3 incompatible.
  returned: always
  type: int
  sample: 3
msg:
  description: A one-line summary.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.migrate_live.xen.plugins.module_utils.xl_migrate_live import (
    DOMAIN_CHOICE, EXIT_INCOMPAT, EXIT_OK, XlMigrateLive, command_argument_spec, domain_argument,
    domain_argument_spec, domain_label, json_lines, migration_argument_spec)


def main():
    spec = command_argument_spec()
    spec.update(domain_argument_spec())
    spec.update(migration_argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           mutually_exclusive=DOMAIN_CHOICE, required_one_of=DOMAIN_CHOICE)
    params = module.params
    label = domain_label(params)
    xl = XlMigrateLive(module)
    argv = xl.migration_argv() + ['--check', '--json', domain_argument(params),
                                  params['destination']]
    rc, out, err = xl.run(argv)
    objs = [o for o in json_lines(out) if 'check' in o]
    if not objs:
        xl.usage_failure('pre-flight of %s to %s' % (label, params['destination']), rc, out, err)
    chk = objs[-1]
    pre = chk.get('preflight')
    if rc not in (EXIT_OK, EXIT_INCOMPAT) or not isinstance(pre, dict):
        module.fail_json(msg='the pre-flight of %s to %s could not run (exit %d): %s'
                         % (label, params['destination'], rc, chk.get('error')),
                         exit_code=rc, stderr=err)
    issues = pre.get('issues') or []
    errors = pre.get('errors', 0)
    compatible = rc == EXIT_OK and bool(pre.get('compatible'))
    if compatible:
        msg = '%s can move to %s (%d warning%s)' % (label, params['destination'],
                                                    pre.get('warnings', 0),
                                                    '' if pre.get('warnings', 0) == 1 else 's')
    else:
        msg = '%s cannot move to %s: %s' % (
            label, params['destination'],
            '; '.join(i.get('message', '') for i in issues if i.get('severity') == 'error'))
    module.exit_json(changed=False, compatible=compatible, issues=issues, errors=errors,
                     warnings_count=pre.get('warnings', 0), verdict=chk.get('verdict'),
                     destination=chk.get('destination'), profile=pre.get('profile'),
                     exit_code=rc, msg=msg)


if __name__ == '__main__':
    main()
