/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * self.bpf.c — self-protection (run --self-protect, docs/security.md,
 * "Self-protection"): the agent's pins, maps, links, state and config
 * directories, executable, cgroup and processes cannot be changed or
 * stopped from outside the agent. Loaded only with --self-protect; every
 * program allows at once unless AEGIS_CFG_SELF_PROTECT is 1.
 *
 * Trusted (never denied):
 *  - a process in the agent's own cgroup (AEGIS_CFG_AGENT_CGID);
 *  - a process whose executable is the agent's (aegis_self_inode entry
 *    AEGIS_GUARD_EXE, written by the daemon at start): `aegisbpf uninstall`,
 *    `aegisbpf emergency …` and local-mode commands keep working;
 *  - for signals only, PID 1 (the supervisor: systemctl stop).
 * Everything else is refused with -EPERM and an AEGIS_EV_TAMPER_BLOCK
 * record, or only reported (AUDIT) in audit mode, emergency disable and
 * break-glass (aegis_verdict_quiet: never a signal).
 *
 * What is guarded (aegis_self_inode, gen-0 inode keys; aegis_self_obj, ids):
 *  - a guarded directory (pin root, maps/, links/, state and config
 *    directories, the agent's cgroup): its entries cannot be created,
 *    linked, opened for writing, truncated, unlinked or renamed, and it
 *    cannot be removed or renamed itself;
 *  - the executable: not written, unlinked or renamed;
 *  - a pinned link: not opened at all (BPF_OBJ_GET), its id not turned
 *    into an fd (BPF_LINK_GET_FD_BY_ID): no `bpftool link detach`;
 *  - a map id: no writable fd (lsm/bpf_map: BPF_OBJ_GET of its pin,
 *    BPF_MAP_GET_FD_BY_ID); read-only fds (BPF_F_RDONLY) are allowed;
 *  - the bpffs holding the pins (key dev, ino 0): not unmounted;
 *  - the agent's processes (cgroup AEGIS_CFG_AGENT_CGID): no signal but 0,
 *    SIGHUP, SIGCHLD, SIGCONT, SIGURG, SIGWINCH; no ptrace attach.
 *
 * Hook signatures (Debian 6.1 and 6.12 BTF; `ret` is the earlier verdict):
 *   inode_unlink/inode_rmdir(struct inode *dir, struct dentry *dentry)
 *   inode_rename(struct inode *old_dir, struct dentry *old_dentry,
 *                struct inode *new_dir, struct dentry *new_dentry)
 *   inode_create(struct inode *dir, struct dentry *dentry, umode_t mode)
 *   inode_link(struct dentry *old_dentry, struct inode *dir, struct dentry *new_dentry)
 *   inode_symlink(struct inode *dir, struct dentry *dentry, const char *old_name)
 *   file_open(struct file *file), path_truncate(const struct path *path)
 *   bpf_map(struct bpf_map *map, fmode_t fmode), bpf(int cmd, union bpf_attr *attr,
 *   unsigned int size), inode_permission(struct inode *inode, int mask)
 *   task_kill(struct task_struct *p, struct kernel_siginfo *info, int sig,
 *             const struct cred *cred)
 *   ptrace_access_check(struct task_struct *child, unsigned int mode)
 *   sb_umount(struct vfsmount *mnt, int flags)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "aegis_abi.h"
#include "aegis_maps.h"
#include "lib/decide.h"
#include "lib/event.h"
#include "lib/inode.h"

/* include/linux/fs.h, uapi fcntl.h, uapi magic.h, uapi signal.h (#defines, not in BTF) */
#define AEGIS_FMODE_WRITE 0x2
#define AEGIS_MAY_WRITE 0x2
#define AEGIS_MAY_READ 0x4
#define AEGIS_O_TRUNC 01000
#define AEGIS_BPF_FS_MAGIC 0xcafe4a11UL
#define AEGIS_SIGHUP 1
#define AEGIS_SIGCHLD 17
#define AEGIS_SIGCONT 18
#define AEGIS_SIGURG 23
#define AEGIS_SIGWINCH 28
#define AEGIS_PTRACE_ATTACH_MODE 0x02

static __always_inline int aegis_self_armed(void)
{
	return aegis_config_get(AEGIS_CFG_SELF_PROTECT) == 1;
}

/* The guard of an inode (a BTF pointer); fills k (gen 0). 0: not guarded. */
static __always_inline __u32 aegis_guard_key(struct inode *inode, struct aegis_inode_key *k)
{
	__u32 *v;

	aegis_inode_key_of(k, inode, 0);
	v = bpf_map_lookup_elem(&aegis_self_inode, k);
	return v ? *v : 0;
}

static __always_inline int aegis_guard_is_dir(__u32 g)
{
	return g == AEGIS_GUARD_PIN_DIR || g == AEGIS_GUARD_STATE_DIR ||
	       g == AEGIS_GUARD_CONFIG_DIR || g == AEGIS_GUARD_CGROUP_DIR ||
	       g == AEGIS_GUARD_RUN_DIR;
}

/*
 * The guard over directory entry `d` of directory `dir`: the entry's own
 * (the executable, a pinned link, a guarded directory itself) or, for any
 * entry, its guarded directory's. k is what matched.
 */
static __always_inline __u32 aegis_entry_guard(struct inode *dir, struct dentry *d,
					       struct aegis_inode_key *k)
{
	struct inode *inode = d->d_inode;
	__u32 g;

	if (inode) {
		g = aegis_guard_key(inode, k);
		if (g && g != AEGIS_GUARD_PIN_FS)
			return g;
	}
	if (!dir)
		return 0;
	g = aegis_guard_key(dir, k);
	return aegis_guard_is_dir(g) ? g : 0;
}

/* A process running the agent's executable (probe reads: mm->exe_file is RCU). */
static __always_inline int aegis_exe_trusted(void)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct inode *exe = BPF_CORE_READ(t, mm, exe_file, f_inode);
	struct aegis_inode_key k = {};
	__u32 *v;

	if (!exe)
		return 0;
	aegis_inode_key_of_read(&k, exe, 0);
	v = bpf_map_lookup_elem(&aegis_self_inode, &k);
	return v && *v == AEGIS_GUARD_EXE;
}

/* The agent itself, or its executable (the CLI run by an operator). */
static __always_inline int aegis_self_trusted(void)
{
	return aegis_is_agent() || aegis_exe_trusted();
}

/* What a refusal records beside the actor. */
struct aegis_tamper {
	struct aegis_inode_key k; /* file ops: what matched; else zero */
	struct dentry *name;      /* file ops: the entry, for its name; else NULL */
	__u64 target_cgid;
	__u32 target;
	__u32 detail;
	__u32 guard;
	__u8 op;
};

/* Refuse (or, in audit/emergency/break-glass, report) with a record. */
static __always_inline int aegis_tamper_deny(struct aegis_hook_ctx *hc, struct aegis_tamper *t)
{
	__u8 action = aegis_verdict_quiet(hc);
	struct aegis_ev_tamper_block *ev = aegis_ev_reserve(sizeof(*ev));
	struct dentry *d = t->name; /* a local: CO-RE relocates dentry fields, not ours */

	if (ev) {
		__builtin_memset(ev, 0, sizeof(*ev));
		aegis_fill_hdr(&ev->hdr, sizeof(*ev), AEGIS_EV_TAMPER_BLOCK,
			       AEGIS_EV_TAMPER_BLOCK_V1);
		aegis_fill_proc(&ev->proc);
		ev->ino = t->k.ino;
		ev->dev = t->k.dev;
		ev->target_cgid = t->target_cgid;
		ev->target = t->target;
		ev->detail = t->detail;
		ev->op = t->op;
		ev->guard = (__u8)t->guard;
		ev->action = action;
		ev->hook = (__u8)hc->hook;
		if (d)
			bpf_probe_read_kernel_str(ev->name, sizeof(ev->name),
						  BPF_CORE_READ(d, d_name.name));
		aegis_ev_submit(ev);
	}
	return aegis_action_rc(action);
}

/* A file operation on entry `d` of `dir` (either may be NULL). */
static __always_inline int aegis_self_entry(__u32 hook, __u8 op, struct inode *dir,
					    struct dentry *d, __u32 detail)
{
	struct aegis_tamper t = {};
	struct aegis_hook_ctx hc;

	if (!aegis_self_armed() || !d)
		return 0;
	aegis_hook_enter(&hc, hook);
	t.guard = aegis_entry_guard(dir, d, &t.k);
	if (!t.guard || aegis_self_trusted())
		return aegis_hook_allow(&hc);
	t.op = op;
	t.name = d;
	t.detail = detail;
	return aegis_tamper_deny(&hc, &t);
}

SEC("lsm/inode_unlink")
int BPF_PROG(aegis_self_unlink, struct inode *dir, struct dentry *dentry, int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret);
	return aegis_lsm_ret(
		aegis_self_entry(AEGIS_HOOK_SELF_UNLINK, AEGIS_TAMPER_UNLINK, dir, dentry, 0));
}

SEC("lsm/inode_rmdir")
int BPF_PROG(aegis_self_rmdir, struct inode *dir, struct dentry *dentry, int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret);
	return aegis_lsm_ret(
		aegis_self_entry(AEGIS_HOOK_SELF_RMDIR, AEGIS_TAMPER_RMDIR, dir, dentry, 0));
}

SEC("lsm/inode_rename")
int BPF_PROG(aegis_self_rename, struct inode *old_dir, struct dentry *old_dentry,
	     struct inode *new_dir, struct dentry *new_dentry, int ret)
{
	int rc;

	if (ret != 0)
		return aegis_lsm_ret(ret);
	/* the source (a guarded entry, or any entry of a guarded directory)… */
	rc = aegis_self_entry(AEGIS_HOOK_SELF_RENAME, AEGIS_TAMPER_RENAME, old_dir, old_dentry, 0);
	if (rc)
		return aegis_lsm_ret(rc);
	/* …and the target (replacing a guarded entry, or moving into a guarded directory) */
	return aegis_lsm_ret(aegis_self_entry(AEGIS_HOOK_SELF_RENAME, AEGIS_TAMPER_RENAME, new_dir,
					      new_dentry, 1));
}

SEC("lsm/inode_create")
int BPF_PROG(aegis_self_create, struct inode *dir, struct dentry *dentry, umode_t mode, int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret);
	return aegis_lsm_ret(
		aegis_self_entry(AEGIS_HOOK_SELF_CREATE, AEGIS_TAMPER_CREATE, dir, dentry, mode));
}

SEC("lsm/inode_symlink")
int BPF_PROG(aegis_self_symlink, struct inode *dir, struct dentry *dentry, const char *old_name,
	     int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret);
	return aegis_lsm_ret(
		aegis_self_entry(AEGIS_HOOK_SELF_CREATE, AEGIS_TAMPER_CREATE, dir, dentry, 0));
}

SEC("lsm/inode_link")
int BPF_PROG(aegis_self_link, struct dentry *old_dentry, struct inode *dir,
	     struct dentry *new_dentry, int ret)
{
	int rc;

	if (ret != 0)
		return aegis_lsm_ret(ret);
	/* a new name in a guarded directory, or a second name for a guarded file */
	rc = aegis_self_entry(AEGIS_HOOK_SELF_CREATE, AEGIS_TAMPER_CREATE, dir, new_dentry, 0);
	if (rc)
		return aegis_lsm_ret(rc);
	return aegis_lsm_ret(aegis_self_entry(AEGIS_HOOK_SELF_CREATE, AEGIS_TAMPER_CREATE,
					      old_dentry->d_parent->d_inode, old_dentry, 1));
}

SEC("lsm/file_open")
int BPF_PROG(aegis_self_file_open, struct file *file, int ret)
{
	struct dentry *d;

	if (ret != 0)
		return aegis_lsm_ret(ret);
	if (!(file->f_mode & AEGIS_FMODE_WRITE) && !(file->f_flags & AEGIS_O_TRUNC))
		return 0;
	d = file->f_path.dentry;
	return aegis_lsm_ret(aegis_self_entry(AEGIS_HOOK_SELF_FILE_OPEN, AEGIS_TAMPER_WRITE,
					      d->d_parent->d_inode, d, file->f_flags));
}

SEC("lsm/path_truncate")
int BPF_PROG(aegis_self_truncate, const struct path *path, int ret)
{
	struct dentry *d;

	if (ret != 0)
		return aegis_lsm_ret(ret);
	d = path->dentry;
	return aegis_lsm_ret(aegis_self_entry(AEGIS_HOOK_SELF_TRUNCATE, AEGIS_TAMPER_TRUNCATE,
					      d->d_parent->d_inode, d, 0));
}

/* One of our maps or links by id, from outside the agent. */
static __always_inline int aegis_self_obj_check(__u32 hook, __u8 op, __u32 guard, __u32 id,
					  __u32 detail)
{
	struct aegis_self_obj_key key = { .id = id, .guard = guard };
	struct aegis_tamper t = {};
	struct aegis_hook_ctx hc;

	if (!aegis_self_armed())
		return 0;
	aegis_hook_enter(&hc, hook);
	if (!bpf_map_lookup_elem(&aegis_self_obj, &key) || aegis_self_trusted())
		return aegis_hook_allow(&hc);
	t.op = op;
	t.guard = guard;
	t.target = id;
	t.detail = detail;
	return aegis_tamper_deny(&hc, &t);
}

SEC("lsm/bpf_map")
int BPF_PROG(aegis_self_bpf_map, struct bpf_map *map, fmode_t fmode, int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret);
	if (!(fmode & AEGIS_FMODE_WRITE))
		return 0; /* read-only fds: bpftool map show/dump, status */
	return aegis_lsm_ret(aegis_self_obj_check(AEGIS_HOOK_SELF_BPF_MAP, AEGIS_TAMPER_MAP_WRITE,
						  AEGIS_GUARD_MAP, map->id, (__u32)fmode));
}

SEC("lsm/bpf")
int BPF_PROG(aegis_self_bpf, int cmd, union bpf_attr *attr, unsigned int size, int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret);
	if (cmd != BPF_LINK_GET_FD_BY_ID)
		return 0;
	return aegis_lsm_ret(aegis_self_obj_check(AEGIS_HOOK_SELF_BPF, AEGIS_TAMPER_LINK_FD,
					    AEGIS_GUARD_LINK, BPF_CORE_READ(attr, link_id),
					    (__u32)cmd));
}

/* BPF_OBJ_GET of a pinned link checks the pin's inode: refused from outside. */
SEC("lsm/inode_permission")
int BPF_PROG(aegis_self_pin_open, struct inode *inode, int mask, int ret)
{
	struct aegis_tamper t = {};
	struct aegis_hook_ctx hc;

	if (ret != 0)
		return aegis_lsm_ret(ret);
	if (!(mask & (AEGIS_MAY_READ | AEGIS_MAY_WRITE)))
		return 0; /* path walks (MAY_EXEC) cost one compare */
	if (inode->i_sb->s_magic != AEGIS_BPF_FS_MAGIC || !aegis_self_armed())
		return 0;
	aegis_hook_enter(&hc, AEGIS_HOOK_SELF_PIN_OPEN);
	t.guard = aegis_guard_key(inode, &t.k);
	if (t.guard != AEGIS_GUARD_LINK_PIN || aegis_self_trusted())
		return aegis_hook_allow(&hc);
	t.op = AEGIS_TAMPER_LINK_FD;
	t.detail = (__u32)mask;
	return aegis_lsm_ret(aegis_tamper_deny(&hc, &t));
}

/* The cgroup v2 id of a task (probe reads: task->cgroups is RCU). */
static __always_inline __u64 aegis_task_cgid(struct task_struct *p)
{
	return BPF_CORE_READ(p, cgroups, dfl_cgrp, kn, id);
}

/* A process of the agent, from outside it: `op` on it is refused. */
static __always_inline int aegis_self_task(__u32 hook, __u8 op, struct task_struct *p,
					   __u32 detail, int pid1_ok)
{
	__u64 agent = aegis_config_get(AEGIS_CFG_AGENT_CGID);
	struct aegis_tamper t = {};
	struct aegis_hook_ctx hc;

	if (!aegis_self_armed() || !agent)
		return 0;
	t.target_cgid = aegis_task_cgid(p);
	if (t.target_cgid != agent)
		return 0;
	aegis_hook_enter(&hc, hook);
	if (aegis_self_trusted() || (pid1_ok && (bpf_get_current_pid_tgid() >> 32) == 1))
		return aegis_hook_allow(&hc);
	t.op = op;
	t.guard = AEGIS_GUARD_AGENT;
	t.target = BPF_CORE_READ(p, tgid);
	t.detail = detail;
	return aegis_tamper_deny(&hc, &t);
}

SEC("lsm/task_kill")
int BPF_PROG(aegis_self_task_kill, struct task_struct *p, struct kernel_siginfo *info, int sig,
	     const struct cred *cred, int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret);
	if (sig == 0 || sig == AEGIS_SIGHUP || sig == AEGIS_SIGCHLD || sig == AEGIS_SIGCONT ||
	    sig == AEGIS_SIGURG || sig == AEGIS_SIGWINCH)
		return 0; /* probes, reload, and signals that stop or end nothing */
	return aegis_lsm_ret(
		aegis_self_task(AEGIS_HOOK_SELF_TASK_KILL, AEGIS_TAMPER_SIGNAL, p, (__u32)sig, 1));
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(aegis_self_ptrace, struct task_struct *child, unsigned int mode, int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret);
	if (!(mode & AEGIS_PTRACE_ATTACH_MODE))
		return 0;
	return aegis_lsm_ret(
		aegis_self_task(AEGIS_HOOK_SELF_PTRACE, AEGIS_TAMPER_PTRACE, child, mode, 0));
}

/* Unmounting the bpffs of the pins would release them (the last mount). */
SEC("lsm/sb_umount")
int BPF_PROG(aegis_self_umount, struct vfsmount *mnt, int flags, int ret)
{
	struct aegis_tamper t = {};
	struct aegis_hook_ctx hc;
	__u32 *v;

	if (ret != 0)
		return aegis_lsm_ret(ret);
	if (!aegis_self_armed())
		return 0;
	aegis_hook_enter(&hc, AEGIS_HOOK_SELF_UMOUNT);
	t.k.dev = mnt->mnt_sb->s_dev;
	v = bpf_map_lookup_elem(&aegis_self_inode, &t.k);
	if (!v || *v != AEGIS_GUARD_PIN_FS || aegis_self_trusted())
		return aegis_hook_allow(&hc);
	t.op = AEGIS_TAMPER_UMOUNT;
	t.guard = AEGIS_GUARD_PIN_FS;
	t.detail = (__u32)flags;
	return aegis_lsm_ret(aegis_tamper_deny(&hc, &t));
}
