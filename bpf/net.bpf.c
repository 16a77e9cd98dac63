/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * net.bpf.c — network enforcement: lsm/socket_connect, lsm/socket_bind and
 * lsm/socket_sendmsg (unconnected sends: only when the message names a
 * destination) for AF_INET and AF_INET6 sockets. bpf/lib/net.h has the
 * decision. The loader loads none of them on kernels without BPF LSM.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "aegis_abi.h"
#include "aegis_maps.h"
#include "lib/net.h"

SEC("lsm/socket_connect")
int BPF_PROG(aegis_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen,
	     int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret); /* an earlier program already decided */
	return aegis_net_hook(sock, address, addrlen, AEGIS_HOOK_SOCKET_CONNECT, AEGIS_DIR_EGRESS);
}

SEC("lsm/socket_bind")
int BPF_PROG(aegis_socket_bind, struct socket *sock, struct sockaddr *address, int addrlen,
	     int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret);
	return aegis_net_hook(sock, address, addrlen, AEGIS_HOOK_SOCKET_BIND, AEGIS_DIR_BIND);
}

/* msg is the kernel's msghdr; msg_name, when set, points to the kernel
 * copy of the destination (sendto/sendmsg: move_addr_to_kernel). */
SEC("lsm/socket_sendmsg")
int BPF_PROG(aegis_socket_sendmsg, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	void *name;

	if (ret != 0)
		return aegis_lsm_ret(ret);
	name = BPF_CORE_READ(msg, msg_name);
	if (!name)
		return 0; /* connected socket: checked at connect */
	return aegis_net_hook(sock, name, BPF_CORE_READ(msg, msg_namelen),
			      AEGIS_HOOK_SOCKET_SENDMSG, AEGIS_DIR_EGRESS);
}
