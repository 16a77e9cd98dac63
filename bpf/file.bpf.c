/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * file.bpf.c — file enforcement: lsm/file_open (default) and
 * lsm/inode_permission (run --lsm-hook=inode|both), deny by inode
 * (bpf/lib/inode.h has the decision), and lsm/inode_copy_up, which keeps a
 * ruled overlayfs file where its rule can see it. The loader loads none of
 * them on kernels without BPF LSM; the rest of the object loads without them.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "aegis_abi.h"
#include "aegis_maps.h"
#include "lib/inode.h"
#include "lib/hash_verified.h"

/* include/linux/fs.h FMODE_WRITE; include/linux/fs.h MAY_WRITE */
#define AEGIS_FMODE_WRITE 0x2
#define AEGIS_MAY_WRITE 0x2

SEC("lsm/file_open")
int BPF_PROG(aegis_file_open, struct file *file, int ret)
{
	struct aegis_hook_ctx hc;
	int rc;

	if (ret != 0)
		return aegis_lsm_ret(ret); /* an earlier program already decided */
	aegis_hook_enter(&hc, AEGIS_HOOK_FILE_OPEN);
	/* with hash rules: a write-open ends the file's verified state
	 * (lib/hash_verified.h; docs/engine.md "mprotect(PROT_EXEC)") */
	if ((hc.flags & AEGIS_POL_EXEC_HASH) && (file->f_mode & AEGIS_FMODE_WRITE))
		aegis_hash_verified_forget(file);
	rc = aegis_inode_decide(&hc, file->f_inode);
	if (rc)
		aegis_count(AEGIS_CNT_FILE_DENY);
	return aegis_lsm_ret(rc);
}

/* MAY_EXEC | MAY_WRITE | MAY_READ | MAY_APPEND: the accesses checked. */
#define AEGIS_MAY_ACCESS 0xf

SEC("lsm/inode_permission")
int BPF_PROG(aegis_inode_permission, struct inode *inode, int mask, int ret)
{
	struct aegis_hook_ctx hc;

	if (ret != 0)
		return aegis_lsm_ret(ret);
	if (!(mask & AEGIS_MAY_ACCESS))
		return 0;
	aegis_hook_enter(&hc, AEGIS_HOOK_INODE_PERMISSION);
	/* run --lsm-hook=inode has no file_open program: the write check of an
	 * open forgets the file instead (before the writer is counted, so it
	 * leaves the narrow race docs/engine.md describes) */
	if ((hc.flags & AEGIS_POL_EXEC_HASH) && (mask & AEGIS_MAY_WRITE))
		aegis_hash_verified_forget_inode(inode);
	return aegis_lsm_ret(aegis_inode_decide(&hc, inode));
}

/*
 * overlayfs copies a lower file up (to the upper layer) on a metadata
 * change, truncate(2), link or rename, without any open. The rule keys on
 * the overlay inode, whose i_ino is the copy's once the inode is evicted
 * when the lower layer cannot give an origin (e.g. 9p): the rule would then
 * silently stop matching. So a copy-up of a file with a rule is refused like
 * an open (docs/engine.md, "File identity per file system"); a write needs
 * an open, which file_open refuses before any copy-up. `src` is the overlay
 * dentry.
 */
SEC("lsm/inode_copy_up")
int BPF_PROG(aegis_inode_copy_up, struct dentry *src, struct cred **new, int ret)
{
	struct aegis_hook_ctx hc;
	struct inode *inode;
	int rc;

	if (ret != 0)
		return aegis_lsm_ret(ret);
	inode = src->d_inode;
	if (!inode)
		return 0;
	aegis_hook_enter(&hc, AEGIS_HOOK_INODE_COPY_UP);
	rc = aegis_inode_decide(&hc, inode);
	if (rc)
		aegis_count(AEGIS_CNT_FILE_DENY);
	return aegis_lsm_ret(rc);
}
