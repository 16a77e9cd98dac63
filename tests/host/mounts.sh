#!/usr/bin/env bash
# Mount the pseudo file systems the host tests need, if they are missing.
# Test setup only: the agent itself never mounts anything; it reports.
set -euo pipefail
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mountpoint -q /sys/kernel/security || mount -t securityfs none /sys/kernel/security
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
