/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The system calls the running daemon may make (docs/security.md,
 * "Seccomp"): an X-macro list, AEGIS_SC(name) per call. The filter is
 * installed once the agent has started (listeners bound, engine loaded,
 * pins made, policy restored), so start-only calls (mount, bind of a new
 * port, the probes' trial loads) need not be here; what the daemon does
 * from then on must be, in itself and in the processes it starts (the
 * proof's probes inherit the filter).
 *
 * Source: the daemon's calls recorded under strace -f in a 6.12 guest (start,
 * policy apply, health, live rule edits, proof rounds), then every call of
 * the whole VM test tier: the filter is on in every guest test and logs
 * each call it refuses (audit type=1326, which the tier's kernel-log scan
 * fails on). The calls marked "not recorded" are reached by code paths the
 * recording did not take; each names that path. The names are x86_64's:
 * on another architecture the filter is not installed and the report says
 * why. */

/* memory, threads, signals (V8, tokio, glibc) */
AEGIS_SC(futex)
AEGIS_SC(mmap)
AEGIS_SC(munmap)
AEGIS_SC(mremap)
AEGIS_SC(mprotect)
AEGIS_SC(madvise)
AEGIS_SC(brk)
AEGIS_SC(pkey_alloc)
AEGIS_SC(pkey_mprotect)
AEGIS_SC(pkey_free)          /* not recorded: V8 frees a protection key it no longer needs */
AEGIS_SC(sched_yield)
AEGIS_SC(sched_getaffinity)
AEGIS_SC(sched_getscheduler)
AEGIS_SC(sched_getparam)
AEGIS_SC(set_robust_list)
AEGIS_SC(rseq)
AEGIS_SC(set_tid_address)
AEGIS_SC(arch_prctl)
AEGIS_SC(prctl)
AEGIS_SC(clone)
AEGIS_SC(clone3)
AEGIS_SC(exit)
AEGIS_SC(exit_group)
AEGIS_SC(rt_sigaction)
AEGIS_SC(rt_sigprocmask)
AEGIS_SC(rt_sigreturn)
AEGIS_SC(sigaltstack)
AEGIS_SC(restart_syscall)
AEGIS_SC(tgkill)             /* not recorded: a signal to one thread (V8, tokio on shutdown) */
AEGIS_SC(gettid)
AEGIS_SC(getpid)
AEGIS_SC(getppid)
AEGIS_SC(getpgrp)
AEGIS_SC(getuid)
AEGIS_SC(geteuid)
AEGIS_SC(getgid)
AEGIS_SC(getegid)
AEGIS_SC(getrandom)
AEGIS_SC(uname)
AEGIS_SC(sysinfo)
AEGIS_SC(prlimit64)
AEGIS_SC(getrusage)          /* not recorded: process resource figures (Deno's memory and CPU use) */
AEGIS_SC(clock_gettime)      /* not recorded: the vDSO answers, unless the clock source has no vDSO (some guests) */
AEGIS_SC(clock_getres)       /* not recorded: as clock_gettime */
AEGIS_SC(gettimeofday)       /* not recorded: as clock_gettime */
AEGIS_SC(clock_nanosleep)
AEGIS_SC(nanosleep)          /* not recorded: the probes' 1 ms waits on a libc without clock_nanosleep */

/* files: state, policy, reports, /proc and /sys reads, the content scan */
AEGIS_SC(read)
AEGIS_SC(write)
AEGIS_SC(readv)              /* not recorded: vectored I/O of the runtime's stdio and sockets */
AEGIS_SC(writev)             /* not recorded: as readv */
AEGIS_SC(pread64)
AEGIS_SC(pwrite64)
AEGIS_SC(lseek)
AEGIS_SC(openat)
AEGIS_SC(open)               /* not recorded: older libc paths of the probes' shell */
AEGIS_SC(close)
AEGIS_SC(fcntl)
AEGIS_SC(ioctl)
AEGIS_SC(dup)                /* not recorded: the runtime duplicating a descriptor */
AEGIS_SC(dup2)
AEGIS_SC(dup3)               /* not recorded: as dup */
AEGIS_SC(pipe2)
AEGIS_SC(statx)
AEGIS_SC(newfstatat)
AEGIS_SC(fstat)
AEGIS_SC(stat)
AEGIS_SC(lstat)
AEGIS_SC(statfs)
AEGIS_SC(fstatfs)            /* not recorded: the statfs of an open file */
AEGIS_SC(readlink)
AEGIS_SC(readlinkat)         /* not recorded: readlink on libcs that use the *at form */
AEGIS_SC(getdents64)
AEGIS_SC(access)
AEGIS_SC(faccessat)          /* not recorded: faccessat2's fallback */
AEGIS_SC(faccessat2)
AEGIS_SC(getcwd)
AEGIS_SC(chdir)
AEGIS_SC(mkdir)
AEGIS_SC(mkdirat)            /* not recorded: mkdir on libcs that use the *at form */
AEGIS_SC(rmdir)              /* not recorded: the stop removes the probes' cgroup */
AEGIS_SC(unlink)             /* not recorded: the stop removes the control socket; stale snapshots */
AEGIS_SC(unlinkat)           /* not recorded: as unlink */
AEGIS_SC(rename)
AEGIS_SC(renameat)           /* not recorded: rename on libcs that use the *at form */
AEGIS_SC(renameat2)          /* not recorded: as renameat */
AEGIS_SC(chmod)
AEGIS_SC(fchmod)
AEGIS_SC(fchmodat)           /* not recorded: chmod on libcs that use the *at form */
AEGIS_SC(fchown)
AEGIS_SC(chown)              /* not recorded: --log-file-group on a reopened log file */
AEGIS_SC(ftruncate)
AEGIS_SC(fsync)
AEGIS_SC(fdatasync)          /* not recorded: a data-only flush of an appended log */
AEGIS_SC(flock)              /* not recorded: file locks of the runtime */
AEGIS_SC(inotify_init1)      /* not recorded: the watcher of unresolved rule paths and of scanned directories */
AEGIS_SC(inotify_add_watch)  /* not recorded: as inotify_init1 */
AEGIS_SC(inotify_rm_watch)   /* not recorded: as inotify_init1 */

/* event loop, sockets (HTTP, control socket, the network probe) */
AEGIS_SC(epoll_create1)
AEGIS_SC(epoll_ctl)
AEGIS_SC(epoll_wait)
AEGIS_SC(epoll_pwait)        /* not recorded: epoll_wait on libcs that use the p-form */
AEGIS_SC(eventfd2)
AEGIS_SC(poll)
AEGIS_SC(ppoll)              /* not recorded: poll on libcs that use the p-form */
AEGIS_SC(socket)
AEGIS_SC(socketpair)
AEGIS_SC(bind)
AEGIS_SC(listen)
AEGIS_SC(accept4)
AEGIS_SC(connect)
AEGIS_SC(getsockname)
AEGIS_SC(getpeername)        /* not recorded: the address of an HTTP client */
AEGIS_SC(getsockopt)
AEGIS_SC(setsockopt)
AEGIS_SC(sendto)
AEGIS_SC(recvfrom)
AEGIS_SC(sendmsg)            /* not recorded: datagram and netlink sends of the runtime */
AEGIS_SC(recvmsg)            /* not recorded: as sendmsg */
AEGIS_SC(shutdown)

/* processes: the proof's probes (fork, exec of /bin/sh, wait, kill) */
AEGIS_SC(execve)
AEGIS_SC(wait4)
AEGIS_SC(waitid)             /* not recorded: the runtime's wait on a child by pidfd */
AEGIS_SC(pidfd_open)
AEGIS_SC(pidfd_send_signal)  /* not recorded: a signal to a probe through its pidfd */
AEGIS_SC(kill)

/* the agent's own work */
AEGIS_SC(bpf)
AEGIS_SC(perf_event_open)
AEGIS_SC(landlock_create_ruleset)
AEGIS_SC(ptrace)             /* not recorded: the kernel proof's PTRACE_ATTACH (policy deny_ptrace) */
AEGIS_SC(init_module)        /* not recorded: the kernel proof's init_module (policy deny_module_load) */
