# -*- coding: utf-8 -*-
# Copyright: (c) 2026, migrate-live contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The options every module of the collection shares: which xl-migrate-live
# to run and where it keeps its state.

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  executable:
    description:
      - Path of the C(xl-migrate-live) command on the managed host.
      - When not set, it is looked up in C(PATH), C(/usr/local/sbin) and C(/usr/sbin).
    type: path
  config:
    description:
      - Configuration file with the command's defaults (C(--config)); the
        command reads C(/etc/xen/migrate-live.conf) when not set.
      - Options given to the module win over the file.
    type: path
  state_dir:
    description:
      - The command's state directory (C(--state-dir)), which holds the
        migration locks, the in-doubt journal and the maintenance flags under C(policy/).
      - The command's default is C(/var/lib/migrate-live).
    type: path
'''

    # Options of the modules that start a migration or its pre-flight.
    MIGRATION = r'''
options:
  transport:
    description:
      - Transport for a I(destination) given as a bare host name (C(--transport)).
      - A I(destination) with a prefix (C(ssh:), C(tls:), C(tcp:), C(unix:)) ignores it.
      - The command's default is C(ssh), as C(xl migrate) does.
    type: str
    choices: [ ssh, tls, tcp ]
  profile:
    description:
      - Compatibility profile the move must respect (C(--profile)), a name
        from C(/etc/migrate-live/profiles/) or a file path.
    type: str
  disk_map:
    description:
      - Where each local disk of the domain goes on the destination, as
        I(source path) to I(destination path), passed as C(--disk-map SRC=DST)
        (block mirroring of managed local disks).
      - The command takes it only for C(ssh) transports, where it starts the
        receiver itself; for C(tcp) and C(tls) the destination's listener
        holds the map (C(xl-migrate-live listen --disk-map SRC=DST URI)) and
        the module fails before anything moves, quoting the command's message.
    type: dict
  psk_file:
    description:
      - C(tcp:) transport only; file holding the pre-shared key (C(--psk)).
    type: path
  pki_dir:
    description:
      - C(tls:) transport only; directory holding the certificates (C(--pki)).
    type: path
  insecure:
    description:
      - C(tcp:) transport only; no authentication (C(--insecure)). Trusted networks only.
    type: bool
    default: false
  ssh_command:
    description:
      - C(ssh:) transport only; command run instead of C(ssh) (C(-s)), as in C(xl migrate -s).
    type: str
  sim_host:
    description:
      - Act on a test-guest host (the C(sim:) backend) served from this
        directory (C(--host)) instead of Xen. For tests and demonstrations.
    type: path
'''

    # Which domain, and where to.
    DOMAIN = r'''
options:
  name:
    description:
      - Name of the domain, as C(xl list) shows it.
      - Exactly one of I(name), I(uuid) and I(domid) is required.
    type: str
  uuid:
    description:
      - UUID of the domain. It stays the same on the destination.
      - Exactly one of I(name), I(uuid) and I(domid) is required.
    type: str
  domid:
    description:
      - Numeric domain id on the managed host.
      - Domain ids are per host and change with a move, so a domain given by
        I(domid) cannot be recognised on the destination; use I(name) or
        I(uuid) for idempotent tasks.
      - Exactly one of I(name), I(uuid) and I(domid) is required.
    type: int
  destination:
    description:
      - The host to move the domain to, as C(xl-migrate-live DOMAIN HOST)
        takes it - a host name reached over I(transport), or a URI
        C(ssh:HOST), C(tls:HOST:PORT), C(tcp:HOST:PORT), C(unix:PATH).
    type: str
    required: true
'''
