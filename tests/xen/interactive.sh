#!/bin/bash
# interactive.sh LAB [CPU]: one Xen host of the end-to-end test in the
# foreground, serial console on this terminal, a dom0 shell at the end of its
# init (role h2: the scenarios do not run; no peer). Quit QEMU with Ctrl-a x.
# Build the images first (run.sh, or build-images.sh BUILDDIR LAB).
LAB=${1:?usage: interactive.sh LAB [CPU]}
exec qemu-system-x86_64 -accel tcg -cpu "${2:-qemu64,+svm,+npt}" -m 1024 -smp 1 -machine pc \
    -display none -serial mon:stdio -no-reboot -nic none \
    -object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-pci,rng=rng0 \
    -kernel "$LAB/img/xen" \
    -append "console=com1 com1=115200,8n1 dom0_mem=512M,max:512M dom0_max_vcpus=1 loglvl=all guest_loglvl=all" \
    -initrd "$LAB/img/vmlinuz console=hvc0 e2e.role=h2 e2e.ip=10.99.0.2 e2e.shell,$LAB/img/dom0-initrd.gz"
