/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * aegis_ring.c — the shim's own BPF ring-buffer consumer.
 *
 * libbpf 1.1's ring_buffer__poll() consumes a record even when the callback
 * cannot take it and has no "at most N", so batch draining into a bounded
 * caller buffer needs its own consumer. Layout of the map's mmap:
 *   offset 0:          consumer page (read-write): consumer position
 *   offset page_size:  producer page (read-only): producer position,
 *                      followed by the data area mapped twice in a row so a
 *                      record that wraps is contiguous.
 * Each record: u32 len (BUSY bit 31, DISCARD bit 30), u32 page offset, data;
 * records are 8-byte aligned. Producer position is read with acquire, the
 * consumer position stored with release.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "aegis_internal.h"

#define RING_BUSY_BIT (1u << 31)
#define RING_DISCARD_BIT (1u << 30)
#define RING_HDR_SZ 8u

struct aegis_ring {
	int map_fd;
	int epoll_fd;
	size_t page_size;
	uint64_t mask; /* data size - 1 */
	unsigned long *consumer_pos;
	unsigned long *producer_pos;
	uint8_t *data;
};

static uint64_t round8(uint64_t n)
{
	return (n + 7u) & ~(uint64_t)7u;
}

static void ring_free(struct aegis_ring *r)
{
	size_t data_sz = (size_t)r->mask + 1;

	if (r->producer_pos)
		munmap(r->producer_pos, r->page_size + 2 * data_sz);
	if (r->consumer_pos)
		munmap(r->consumer_pos, r->page_size);
	if (r->epoll_fd >= 0)
		close(r->epoll_fd);
	free(r);
}

static int ring_map(struct aegis_ring *r, uint32_t data_sz)
{
	void *p;

	p = mmap(NULL, r->page_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->map_fd, 0);
	if (p == MAP_FAILED)
		return aegis_neg_errno();
	r->consumer_pos = p;
	p = mmap(NULL, r->page_size + 2 * (size_t)data_sz, PROT_READ, MAP_SHARED, r->map_fd,
		 (off_t)r->page_size);
	if (p == MAP_FAILED)
		return aegis_neg_errno();
	r->producer_pos = p;
	r->data = (uint8_t *)p + r->page_size;
	return 0;
}

/*
 * Edge-triggered: aegis_ring_wait() returns when the kernel woke the ring
 * since the last wait (a record submitted with a wake-up, or records present
 * when the ring was opened), not whenever records are waiting. Telemetry is
 * submitted without a wake-up (bpf/lib/event.h) so that a steady trickle of
 * it is read in batches at the caller's timeout; level-triggered, any record
 * left in the ring would end every wait at once.
 */
static int ring_epoll(struct aegis_ring *r)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };

	r->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (r->epoll_fd < 0)
		return aegis_neg_errno();
	ev.data.fd = r->map_fd;
	if (epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, r->map_fd, &ev) < 0)
		return aegis_neg_errno();
	return 0;
}

struct aegis_ring *aegis_ring_open(int map_fd, int *err)
{
	uint32_t type, max_entries;
	struct aegis_ring *r;
	long page;
	int rc = aegis_map_info(map_fd, &type, NULL, NULL, &max_entries);

	if (rc == 0 && (type != BPF_MAP_TYPE_RINGBUF || max_entries == 0 ||
			(max_entries & (max_entries - 1))))
		rc = -EINVAL;
	page = sysconf(_SC_PAGESIZE);
	if (rc == 0 && page <= 0)
		rc = -EINVAL;
	r = rc == 0 ? calloc(1, sizeof(*r)) : NULL;
	if (rc == 0 && !r)
		rc = -ENOMEM;
	if (rc == 0) {
		r->map_fd = map_fd;
		r->epoll_fd = -1;
		r->page_size = (size_t)page;
		r->mask = (uint64_t)max_entries - 1;
		rc = ring_map(r, max_entries);
		if (rc == 0)
			rc = ring_epoll(r);
		if (rc < 0) {
			ring_free(r);
			r = NULL;
		}
	}
	if (err)
		*err = rc;
	return r;
}

/* Copy one record (header + data + zero pad) into out. */
static uint32_t put_record(uint8_t *out, const uint8_t *src, uint32_t len)
{
	uint32_t hdr[2] = { len, 0 };
	uint32_t total = (uint32_t)round8(RING_HDR_SZ + len);

	memcpy(out, hdr, sizeof(hdr));
	memcpy(out + RING_HDR_SZ, src, len);
	memset(out + RING_HDR_SZ + len, 0, total - RING_HDR_SZ - len);
	return total;
}

int aegis_ring_drain(struct aegis_ring *r, uint8_t *out, uint32_t cap, uint32_t *records)
{
	unsigned long cons, prod;
	uint32_t written = 0, n = 0;
	int rc = 0;

	if (!r || (!out && cap) || !records)
		return -EINVAL;
	if (cap > INT32_MAX)
		cap = INT32_MAX; /* the byte count is returned as an int */
	cons = __atomic_load_n(r->consumer_pos, __ATOMIC_ACQUIRE);
	prod = __atomic_load_n(r->producer_pos, __ATOMIC_ACQUIRE);
	while (cons < prod) {
		const uint32_t *hdr = (const uint32_t *)(r->data + (cons & r->mask));
		uint32_t len = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);
		uint32_t dlen = len & ~(RING_BUSY_BIT | RING_DISCARD_BIT);
		uint64_t step = round8(RING_HDR_SZ + dlen);

		if (len & RING_BUSY_BIT)
			break; /* not committed yet: later records must wait too */
		if (!(len & RING_DISCARD_BIT)) {
			if (step > (uint64_t)cap - written) {
				if (n == 0 && written == 0 && step > cap)
					rc = -EMSGSIZE; /* could never fit: say so */
				break;
			}
			written += put_record(out + written, (const uint8_t *)(hdr + 2), dlen);
			n++;
		}
		cons += step;
		if (cons == prod)
			prod = __atomic_load_n(r->producer_pos, __ATOMIC_ACQUIRE);
	}
	__atomic_store_n(r->consumer_pos, cons, __ATOMIC_RELEASE);
	*records = n;
	return rc < 0 ? rc : (int)written;
}

int64_t aegis_ring_avail(struct aegis_ring *r)
{
	unsigned long cons, prod;

	if (!r)
		return -EINVAL;
	cons = __atomic_load_n(r->consumer_pos, __ATOMIC_ACQUIRE);
	prod = __atomic_load_n(r->producer_pos, __ATOMIC_ACQUIRE);
	return (int64_t)(prod - cons);
}

int aegis_ring_wait(struct aegis_ring *r, int timeout_ms)
{
	struct epoll_event ev;
	int n;

	if (!r)
		return -EINVAL;
	n = epoll_wait(r->epoll_fd, &ev, 1, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : aegis_neg_errno();
	return n > 0 ? 1 : 0;
}

void aegis_ring_close(struct aegis_ring *r)
{
	if (r)
		ring_free(r);
}
