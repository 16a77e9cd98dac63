/**
 * The systemd unit that `aegisbpf install` writes: a copy of
 * packaging/systemd/aegisbpf.service (install_test.ts checks that they are
 * identical), kept in code so the compiled binary carries it.
 *
 * @module
 */
export const UNIT_TEMPLATE = `# aegisbpf agent: BPF-LSM enforcement. Installed by aegisbpf install
# (which replaces @BINDIR@); every setting is explained in docs/install.md.
[Unit]
Description=aegisbpf BPF-LSM security agent
After=local-fs.target sys-fs-bpf.mount
Wants=sys-fs-bpf.mount
# Start-limit: five failed starts in five minutes stop the restarts (the
# pinned programs keep enforcing meanwhile; see docs/install.md).
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
# READY=1 once the stored policy is back in the kernel and the posture is
# decided; STATUS= follows the posture; WATCHDOG=1 from the 1 s runtime
# checks (docs/install.md). A large policy on a slow machine takes a while
# to restore: hence the start timeout.
Type=notify
NotifyAccess=main
TimeoutStartSec=300s
WatchdogSec=60s
EnvironmentFile=-/etc/aegisbpf/aegisbpf.env
ExecStart=@BINDIR@/aegisbpf run
# Reload = SIGHUP: the agent reopens its event log file (after logrotate),
# applies --policy again if that file changed, and keeps running. Other
# policy changes go through aegisbpf policy apply.
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2s
# Kernel enforcement outlives the process (pinned links under
# /sys/fs/bpf/aegisbpf); stopping the service does not end it.
KillMode=mixed
TimeoutStopSec=20s
# The agent moves itself into a child cgroup of the unit's (aegisbpf.agent,
# exempt from its rules) and starts its proof probes in a sibling
# (aegisbpf.canary): the unit's subtree is the agent's to manage.
Delegate=yes

# Privileges: root, but only these capabilities (docs/install.md).
User=root
CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_SYS_ADMIN CAP_SYS_RESOURCE CAP_NET_BIND_SERVICE CAP_SYS_PTRACE CAP_DAC_READ_SEARCH CAP_KILL
NoNewPrivileges=yes
LimitMEMLOCK=infinity
LimitNOFILE=65536

# File system: read-only except the agent's own directories and bpffs.
ProtectSystem=strict
ReadWritePaths=/var/lib/aegisbpf /sys/fs/bpf
StateDirectory=aegisbpf
StateDirectoryMode=0700
RuntimeDirectory=aegisbpf
RuntimeDirectoryMode=0700
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelModules=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictNamespaces=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallArchitectures=native
UMask=0077

[Install]
WantedBy=multi-user.target
`;

/**
 * The Deno permissions of the agent, as in build/permissions.flags (the one
 * definition; install_test.ts checks that the two agree): the wrapper that
 * `aegisbpf install --bundle` writes runs the bundle with them.
 */
export const LAUNCHER_PERMISSIONS: readonly string[] = ["--allow-all"];
