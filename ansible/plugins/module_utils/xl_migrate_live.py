# -*- coding: utf-8 -*-
# Copyright: (c) 2026, migrate-live contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the modules of migrate_live.xen share: finding and running
xl-migrate-live with argv lists (never a shell string), reading its --json
lines, its exit codes, and finding a domain in a host's facts.

The command's JSON is documented in docs/json-output.md and
docs/policies.md of migrate-live; only those keys are read here.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

# xl-migrate-live's exit codes (docs/json-output.md, docs/policies.md).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INCOMPAT = 3
EXIT_CANCELLED = 4
EXIT_INDOUBT = 5
EXIT_LOCKED = 6
EXIT_IMPOSSIBLE = 7

EXIT_MEANING = {
    EXIT_OK: 'done',
    EXIT_FAILED: 'failed',
    EXIT_USAGE: 'bad usage',
    EXIT_INCOMPAT: 'incompatible',
    EXIT_CANCELLED: 'cancelled',
    EXIT_INDOUBT: 'in doubt',
    EXIT_LOCKED: 'locked',
    EXIT_IMPOSSIBLE: 'plan impossible',
}


def command_argument_spec():
    """Options of every module (doc fragment migrate_live.xen.command)."""
    return dict(
        executable=dict(type='path'),
        config=dict(type='path'),
        state_dir=dict(type='path'),
    )


def domain_argument_spec():
    """Which domain and where to (doc fragment migrate_live.xen.command.domain)."""
    return dict(
        name=dict(type='str'),
        uuid=dict(type='str'),
        domid=dict(type='int'),
        destination=dict(type='str', required=True),
    )


def migration_argument_spec():
    """Transport and compatibility options (doc fragment ...command.migration)."""
    return dict(
        transport=dict(type='str', choices=['ssh', 'tls', 'tcp']),
        profile=dict(type='str'),
        disk_map=dict(type='dict'),
        psk_file=dict(type='path'),
        pki_dir=dict(type='path'),
        insecure=dict(type='bool', default=False),
        ssh_command=dict(type='str'),
        sim_host=dict(type='path'),
    )


DOMAIN_CHOICE = [['name', 'uuid', 'domid']]


def domain_label(params):
    """How the domain was named, for messages."""
    if params.get('name') is not None:
        return params['name']
    if params.get('uuid') is not None:
        return params['uuid']
    return 'domain id %d' % params['domid']


def domain_argument(params):
    """The DOMAIN argument of the command."""
    if params.get('name') is not None:
        return params['name']
    if params.get('uuid') is not None:
        return params['uuid']
    return str(params['domid'])


def json_lines(text):
    """Every JSON object printed one per line; other lines are ignored."""
    objs = []
    for line in (text or '').splitlines():
        line = line.strip()
        if not line.startswith('{'):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            objs.append(obj)
    return objs


def last_line(text):
    """The last non-empty line of a text (the command's final error),
    leaving out the usage hint that follows a usage error."""
    lines = [x.strip() for x in (text or '').splitlines()
             if x.strip() and not x.strip().startswith("Try 'xl-migrate-live --help'")]
    return lines[-1] if lines else ''


def find_domain(facts, params):
    """The entry of facts['domains'] that is the domain, or None.

    Names are compared as given; a uuid case-insensitively (Xen facts carry
    it); a domid only on the host whose facts these are.
    """
    for dom in facts.get('domains') or []:
        if not isinstance(dom, dict):
            continue
        if params.get('name') is not None:
            if dom.get('name') == params['name']:
                return dom
        elif params.get('uuid') is not None:
            if str(dom.get('uuid', '')).lower() == params['uuid'].lower():
                return dom
        elif params.get('domid') is not None:
            if dom.get('domid') == params['domid']:
                return dom
    return None


def destination_host(destination):
    """The host part of a destination (for ssh), or None for unix: paths."""
    dest = destination
    for prefix in ('ssh:', 'tls:', 'tcp:'):
        if dest.startswith(prefix):
            dest = dest[len(prefix):]
            if prefix == 'ssh:':
                return dest
            break
    else:
        if dest.startswith('unix:'):
            return None
    if dest.startswith('['):
        return dest[1:dest.index(']')] if ']' in dest else dest
    if dest.count(':') == 1:
        return dest.split(':', 1)[0]
    return dest


class XlMigrateLive(object):
    """One xl-migrate-live on the managed host."""

    def __init__(self, module):
        self.module = module
        params = module.params
        exe = params.get('executable')
        if not exe:
            exe = module.get_bin_path('xl-migrate-live', required=True,
                                      opt_dirs=['/usr/local/sbin', '/usr/sbin'])
        self.exe = exe

    def base_argv(self):
        """The command with the options every subcommand takes."""
        params = self.module.params
        argv = [self.exe]
        if params.get('config'):
            argv += ['--config', params['config']]
        if params.get('state_dir'):
            argv += ['--state-dir', params['state_dir']]
        return argv

    def migration_argv(self):
        """base_argv plus the transport and compatibility options."""
        params = self.module.params
        argv = self.base_argv()
        if params.get('sim_host'):
            argv += ['--host', params['sim_host']]
        if params.get('transport'):
            argv += ['--transport', params['transport']]
        if params.get('psk_file'):
            argv += ['--psk', params['psk_file']]
        if params.get('pki_dir'):
            argv += ['--pki', params['pki_dir']]
        if params.get('insecure'):
            argv += ['--insecure']
        if params.get('ssh_command'):
            argv += ['-s', params['ssh_command']]
        if params.get('profile'):
            argv += ['--profile', params['profile']]
        for src, dst in sorted((params.get('disk_map') or {}).items()):
            argv += ['--disk-map', '%s=%s' % (src, dst)]
        return argv

    def run(self, argv):
        """Run an argv list; (rc, stdout, stderr). Never a shell."""
        return self.module.run_command(argv, check_rc=False, use_unsafe_shell=False)

    def facts(self, prefix=None):
        """A host's facts: this host's (prefix None) or those printed by
        prefix + ['facts'] (an argv running xl-migrate-live elsewhere).
        (facts dict or None, error text)."""
        if prefix is None:
            argv = self.base_argv()
            if self.module.params.get('sim_host'):
                argv += ['--host', self.module.params['sim_host']]
        else:
            argv = list(prefix)
        argv.append('facts')
        rc, out, err = self.run(argv)
        if rc != 0:
            return None, '%s: exit %d: %s' % (' '.join(argv), rc, last_line(err) or last_line(out))
        objs = json_lines(out)
        if not objs:
            return None, '%s printed no JSON facts' % ' '.join(argv)
        return objs[-1], None

    def usage_failure(self, what, rc, out, err, **extra):
        """Fail for an exit the command gives before its JSON report: bad
        usage (the options were refused, nothing happened), the domain's
        lock held by another run, or a failure before the session started."""
        text = last_line(err) or last_line(out)
        if rc == EXIT_USAGE:
            msg = '%s: xl-migrate-live refused the options (exit %d): %s' % (what, rc, text)
        elif rc == EXIT_LOCKED:
            msg = ('%s: another migration or policy run holds the domain\'s lock (exit %d); '
                   'nothing was moved: %s' % (what, rc, text))
        else:
            msg = '%s: xl-migrate-live failed before it started (exit %d): %s' % (what, rc, text)
        self.module.fail_json(msg=msg, rc=rc, stderr=err, **extra)
