/*
 * The C reference of `npm run bench`: what each JS case does through the
 * library, done the way a C driver would, against the same uapi headers.
 * run.js builds it with `cc -O2` into scripts/bench/out/ (git-ignored).
 *
 *   ref CASE threads=N [key=value...]
 *
 * threads=N starts N-1 threads that only sleep, as a Node process has them
 * (libuv's pool, V8's workers). It is not the same work with one thread: in a
 * process whose file table is shared, every fd syscall takes and drops a
 * reference on the file (fdget), so run.js measures both.
 *
 * Each case sets up (untimed) and prints one number, ns per operation: the
 * loops the fastest of batches=B batches after an untimed one (others share
 * the machine: a preempted batch says nothing about the code), the latency
 * cases the median.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* edu registers (QEMU docs/specs/edu.rst) */
enum { IRQ_STATUS = 0x24, IRQ_RAISE = 0x60, IRQ_ACK = 0x64, DMA_SRC = 0x80, DMA_DST = 0x88, DMA_COUNT = 0x90, DMA_CMD = 0x98 };
enum { CMD_START = 1, CMD_TO_RAM = 2, CMD_IRQ = 4, EDU_BUFFER = 0x40000 };

static void die(const char *what) {
	fprintf(stderr, "ref: %s: %s\n", what, errno ? strerror(errno) : "failed");
	exit(1);
}
#define CHECK(expr, what) \
	do { \
		errno = 0; \
		if ((expr) < 0) die(what); \
	} while (0)

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int nargs;
static char **args;

static const char *arg(const char *key, const char *fallback) {
	size_t n = strlen(key);
	for (int i = 0; i < nargs; i++)
		if (!strncmp(args[i], key, n) && args[i][n] == '=') return args[i] + n + 1;
	if (!fallback) {
		fprintf(stderr, "ref: missing %s=\n", key);
		exit(2);
	}
	return fallback;
}
static uint64_t num(const char *key, const char *fallback) { return strtoull(arg(key, fallback), NULL, 0); }

static int by_value(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}
static double median(double *v, size_t n) {
	qsort(v, n, sizeof *v, by_value);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void *sleeper(void *unused) {
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
	pthread_mutex_lock(&lock);
	for (;;) pthread_cond_wait(&never, &lock);
	return unused;
}

/* One untimed batch, then the fastest of `batches`; ns per operation. */
static double best(double (*batch)(void *), void *ctx) {
	double min = 1e300;
	batch(ctx);
	for (uint64_t b = num("batches", "10"); b > 0; b--) {
		double ns = batch(ctx);
		if (ns < min) min = ns;
	}
	return min;
}

/* ---- eventfds, the user-space half of an interrupt ------------------------ */

struct irq {
	int eventfd, epoll;
};

static void irq_open(struct irq *q) {
	CHECK(q->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd");
	CHECK(q->epoll = epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
	struct epoll_event ev = {.events = EPOLLIN};
	CHECK(epoll_ctl(q->epoll, EPOLL_CTL_ADD, q->eventfd, &ev), "epoll_ctl");
}

static void irq_wait(struct irq *q) {
	struct epoll_event ev;
	uint64_t count;
	for (;;) {
		int n = epoll_wait(q->epoll, &ev, 1, 10000);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) die("epoll_wait (no interrupt within 10 s?)");
		if (read(q->eventfd, &count, sizeof count) == sizeof count) return;
		if (errno != EAGAIN) die("read eventfd");
	}
}

/* The cheap syscall: write(2) on an eventfd in an epoll set (the JS side: irq.trigger()). */
static double signal_batch(void *ctx) {
	uint64_t iters = num("iters", "2000"), one = 1, t0 = now_ns();
	for (uint64_t i = 0; i < iters; i++)
		if (write(*(int *)ctx, &one, sizeof one) != sizeof one) die("write eventfd");
	return (double)(now_ns() - t0) / (double)iters;
}
static double case_eventfd_write(void) {
	struct irq q;
	irq_open(&q);
	return best(signal_batch, &q.eventfd);
}

/* ---- memory ---------------------------------------------------------------- */

/* DmaBuffer.allocate(4096).close(): mmap, madvise(MADV_DONTFORK), munmap. */
static double dmabuf(void *ctx) {
	(void)ctx;
	uint64_t iters = num("iters", "500"), t0 = now_ns();
	for (uint64_t i = 0; i < iters; i++) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) die("mmap");
		CHECK(madvise(p, 4096, MADV_DONTFORK), "madvise");
		CHECK(munmap(p, 4096), "munmap");
	}
	return (double)(now_ns() - t0) / (double)iters;
}

/* 32-bit volatile loads or stores on a page of RAM (the JS side: a RegionMapping over RAM). */
static double ram_read(void *ctx) {
	volatile uint32_t *p = ctx;
	uint64_t iters = num("iters", "200000"), t0 = now_ns();
	uint32_t sink = 0;
	for (uint64_t i = 0; i < iters; i++) sink += p[i & 255];
	if (sink == 1) fputc('\n', stderr); /* keeps the loads' sum alive */
	return (double)(now_ns() - t0) / (double)iters;
}
static double ram_write(void *ctx) {
	volatile uint32_t *p = ctx;
	uint64_t iters = num("iters", "200000"), t0 = now_ns();
	for (uint64_t i = 0; i < iters; i++) p[i & 255] = (uint32_t)i;
	return (double)(now_ns() - t0) / (double)iters;
}
static double case_ram(double (*batch)(void *)) {
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) die("mmap");
	return best(batch, p);
}

/* fallocate the harness's memfd once, so that no pass pays the zeroing (prints the time taken). */
static double case_populate(void) {
	uint64_t t0 = now_ns();
	CHECK(fallocate((int)num("fd", NULL), 0, 0, (off_t)num("size", NULL)), "fallocate");
	return (double)(now_ns() - t0);
}

/* ---- VFIO (the test guest) --------------------------------------------------- */

struct vfio {
	int container, group, device;
	volatile uint8_t *bar0;
};

static void vfio_open(struct vfio *v, int with_device) {
	char path[64];
	memset(v, 0, sizeof *v);
	snprintf(path, sizeof path, "/dev/vfio/%s", arg("group", NULL));
	CHECK(v->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC), "open /dev/vfio/vfio");
	CHECK(v->group = open(path, O_RDWR | O_CLOEXEC), path);
	CHECK(ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container), "VFIO_GROUP_SET_CONTAINER");
	CHECK(ioctl(v->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), "VFIO_SET_IOMMU");
	if (!with_device) return;
	CHECK(v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, arg("bdf", NULL)), "VFIO_GROUP_GET_DEVICE_FD");
	struct vfio_region_info cfg = {.argsz = sizeof cfg, .index = VFIO_PCI_CONFIG_REGION_INDEX};
	struct vfio_region_info bar = {.argsz = sizeof bar, .index = VFIO_PCI_BAR0_REGION_INDEX};
	CHECK(ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &cfg), "VFIO_DEVICE_GET_REGION_INFO");
	CHECK(ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &bar), "VFIO_DEVICE_GET_REGION_INFO");
	uint16_t command; /* bus master enable (PCI command bit 2): edu's MSIs and DMA need it */
	if (pread(v->device, &command, 2, (off_t)cfg.offset + 4) != 2) die("pread config");
	command |= 4;
	if (pwrite(v->device, &command, 2, (off_t)cfg.offset + 4) != 2) die("pwrite config");
	void *p = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, v->device, (off_t)bar.offset);
	if (p == MAP_FAILED) die("mmap BAR0");
	v->bar0 = p;
}

static uint32_t rd(struct vfio *v, unsigned reg) { return *(volatile uint32_t *)(v->bar0 + reg); }
static void wr(struct vfio *v, unsigned reg, uint32_t value) { *(volatile uint32_t *)(v->bar0 + reg) = value; }

static void ack(struct vfio *v) {
	uint32_t pending = rd(v, IRQ_STATUS);
	if (pending) wr(v, IRQ_ACK, pending);
}

static void msi_enable(struct vfio *v, struct irq *q) {
	irq_open(q);
	union {
		struct vfio_irq_set set;
		char bytes[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
	} u;
	u.set = (struct vfio_irq_set){.argsz = sizeof u, .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
	                              .index = VFIO_PCI_MSI_IRQ_INDEX, .count = 1};
	memcpy(u.set.data, &q->eventfd, sizeof(int32_t));
	CHECK(ioctl(v->device, VFIO_DEVICE_SET_IRQS, &u.set), "VFIO_DEVICE_SET_IRQS");
}

static void map_dma(int container, void *vaddr, uint64_t iova, uint64_t size) {
	struct vfio_iommu_type1_dma_map map = {.argsz = sizeof map, .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
	                                       .vaddr = (uintptr_t)vaddr, .iova = iova, .size = size};
	CHECK(ioctl(container, VFIO_IOMMU_MAP_DMA, &map), "VFIO_IOMMU_MAP_DMA");
}

static void unmap_dma(int container, uint64_t iova, uint64_t size) {
	struct vfio_iommu_type1_dma_unmap unmap = {.argsz = sizeof unmap, .iova = iova, .size = size};
	CHECK(ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap), "VFIO_IOMMU_UNMAP_DMA");
	if (unmap.size != size) die("UNMAP_DMA unmapped another size");
}

/* VFIO_GROUP_GET_STATUS (the JS side: group.status()). */
static double group_status(void *ctx) {
	uint64_t iters = num("iters", "1000"), t0 = now_ns();
	for (uint64_t i = 0; i < iters; i++) {
		struct vfio_group_status status = {.argsz = sizeof status};
		CHECK(ioctl(*(int *)ctx, VFIO_GROUP_GET_STATUS, &status), "VFIO_GROUP_GET_STATUS");
		if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) die("the group is not viable");
	}
	return (double)(now_ns() - t0) / (double)iters;
}
static double case_group_status(void) {
	struct vfio v;
	vfio_open(&v, 0);
	return best(group_status, &v.group);
}

/*
 * `count` chunks of `size` bytes of the harness's memfd (fd=3), each mapped
 * at its own IOVA, then each unmapped: ns per chunk's map + unmap. The
 * untimed batch faults the pages into this process's mapping.
 */
struct map_job {
	int container;
	uint8_t *buf;
	uint64_t size, count;
};
static double map_chunks(void *ctx) {
	struct map_job *j = ctx;
	uint64_t iova = 0x40000000, t0 = now_ns();
	for (uint64_t i = 0; i < j->count; i++) map_dma(j->container, j->buf + i * j->size, iova + i * j->size, j->size);
	for (uint64_t i = 0; i < j->count; i++) unmap_dma(j->container, iova + i * j->size, j->size);
	return (double)(now_ns() - t0) / (double)j->count;
}
static double case_map(void) {
	struct vfio v;
	vfio_open(&v, 0);
	struct map_job j = {.container = v.container, .size = num("size", NULL), .count = num("count", "1")};
	j.buf = mmap(NULL, j.size * j.count, PROT_READ | PROT_WRITE, MAP_SHARED, (int)num("fd", "3"), 0);
	if (j.buf == MAP_FAILED) die("mmap memfd");
	return best(map_chunks, &j);
}

/*
 * Median ns from raising an interrupt to epoll_wait returning and the count
 * read: a write(2) to the eventfd (v NULL; the JS side: the eventfd's
 * listener or irq.wait()), or edu's raise-interrupt register and its MSI.
 */
static double latency(struct vfio *v, struct irq *q) {
	uint64_t count = num("count", "1000"), one = 1;
	double *lat = calloc(count, sizeof *lat);
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t i = 0; i < count; i++) {
			uint64_t t0 = now_ns();
			if (v) wr(v, IRQ_RAISE, 1);
			else if (write(q->eventfd, &one, sizeof one) != sizeof one) die("write eventfd");
			irq_wait(q);
			lat[i] = (double)(now_ns() - t0);
			if (v) ack(v);
		}
	}
	return median(lat, count);
}
static double case_eventfd_epoll(void) {
	struct irq q;
	irq_open(&q);
	return latency(NULL, &q);
}
static double case_msi(void) {
	struct vfio v;
	struct irq q;
	vfio_open(&v, 1);
	msi_enable(&v, &q);
	return latency(&v, &q);
}

/* One edu DMA: program it, wait for its completion MSI. */
static void edu_dma(struct vfio *v, struct irq *q, uint32_t src, uint32_t dst, uint32_t bytes, uint32_t cmd) {
	wr(v, DMA_SRC, src);
	wr(v, DMA_DST, dst);
	wr(v, DMA_COUNT, bytes);
	wr(v, DMA_CMD, CMD_START | CMD_IRQ | cmd);
	irq_wait(q);
	ack(v);
}

/*
 * edu DMA round trip: map a 4 KiB buffer, DMA `bytes` RAM → device, then
 * device → RAM into the second half, compare, unmap. edu completes each DMA
 * from a 100 ms QEMU timer, so this is mostly two of those.
 */
static double case_dma(void) {
	uint64_t count = num("count", "3"), bytes = num("bytes", "1024"), iova = 0x100000;
	double *lat = calloc(count, sizeof *lat);
	struct vfio v;
	struct irq q;
	vfio_open(&v, 1);
	msi_enable(&v, &q);
	uint8_t *buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) die("mmap");
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t i = 0; i < (pass ? count : 1); i++) {
			for (uint64_t b = 0; b < bytes; b++) buf[b] = (uint8_t)(b * 7 + i + 1);
			memset(buf + 2048, 0, bytes);
			uint64_t t0 = now_ns();
			map_dma(v.container, buf, iova, 4096);
			edu_dma(&v, &q, (uint32_t)iova, EDU_BUFFER, (uint32_t)bytes, 0);
			edu_dma(&v, &q, EDU_BUFFER, (uint32_t)iova + 2048, (uint32_t)bytes, CMD_TO_RAM);
			int same = !memcmp(buf, buf + 2048, bytes);
			unmap_dma(v.container, iova, 4096);
			lat[i] = (double)(now_ns() - t0);
			if (!same) die("the bytes that came back differ");
		}
	}
	return median(lat, count);
}

/* ---- NVMe (QEMU's nvme): examples/nvme's polled reads, in C ----------------
 * One admin and one I/O queue pair in DMA memory mapped at IOVAs from 4 GiB,
 * completions by polling the phase tag, no interrupts: the algorithm the
 * TypeScript side runs (NvmeController with interrupts: false, drained in a
 * loop). Register and entry layouts from the NVMe 1.4 base specification. */

enum { NVME_CAP = 0x00, NVME_CC = 0x14, NVME_CSTS = 0x1c, NVME_AQA = 0x24, NVME_ASQ = 0x28, NVME_ACQ = 0x30 };
enum { NVME_DEPTH = 64, NVME_PAGE = 4096 };

struct nvme_queue {
	uint32_t *sq;
	volatile uint32_t *cq;
	uint64_t sq_iova, cq_iova;
	volatile uint32_t *sq_doorbell, *cq_doorbell;
	unsigned tail, head, phase;
};

struct nvme {
	struct vfio v;
	struct nvme_queue admin, io;
	uint64_t data_iova, next_iova;
};

/* Zeroed, touched (so type1 pins the real pages), mapped at the next IOVA. */
static void *nvme_dma(struct nvme *n, size_t size, uint64_t *iova) {
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) die("mmap");
	memset(p, 0, size);
	*iova = n->next_iova;
	map_dma(n->v.container, p, *iova, size);
	n->next_iova += size;
	return p;
}

static void nvme_queue_init(struct nvme *n, struct nvme_queue *q, unsigned id, unsigned stride) {
	q->sq = nvme_dma(n, NVME_PAGE, &q->sq_iova);
	q->cq = nvme_dma(n, NVME_PAGE, &q->cq_iova);
	q->sq_doorbell = (volatile uint32_t *)(n->v.bar0 + 0x1000 + 2 * id * stride);
	q->cq_doorbell = (volatile uint32_t *)(n->v.bar0 + 0x1000 + (2 * id + 1) * stride);
	q->tail = q->head = 0;
	q->phase = 1;
}

/* The CID is the slot: at most NVME_DEPTH - 1 commands are in flight. */
static void nvme_submit(struct nvme_queue *q, uint8_t opcode, uint32_t nsid, uint64_t prp1, uint32_t cdw10, uint32_t cdw11,
                        uint32_t cdw12) {
	uint32_t *e = q->sq + q->tail * 16;
	memset(e, 0, 64);
	e[0] = opcode | (q->tail << 16);
	e[1] = nsid;
	e[6] = (uint32_t)prp1;
	e[7] = (uint32_t)(prp1 >> 32);
	e[10] = cdw10;
	e[11] = cdw11;
	e[12] = cdw12;
	q->tail = (q->tail + 1) % NVME_DEPTH;
	__atomic_thread_fence(__ATOMIC_RELEASE); /* the entry before the doorbell */
	*q->sq_doorbell = q->tail;
}

/* Takes every new completion; returns how many. */
static unsigned nvme_reap(struct nvme_queue *q) {
	unsigned n = 0;
	for (;;) {
		uint32_t dw3 = q->cq[q->head * 4 + 3];
		if (((dw3 >> 16) & 1) != q->phase) break;
		if (dw3 >> 17) die("NVMe command failed");
		if (++q->head == NVME_DEPTH) {
			q->head = 0;
			q->phase ^= 1;
		}
		n++;
	}
	if (n) *q->cq_doorbell = q->head;
	return n;
}

static void nvme_admin(struct nvme *n, uint8_t opcode, uint64_t prp1, uint32_t cdw10, uint32_t cdw11) {
	nvme_submit(&n->admin, opcode, 0, prp1, cdw10, cdw11, 0);
	for (uint64_t t0 = now_ns(); !nvme_reap(&n->admin);)
		if (now_ns() - t0 > 10000000000u) die("no admin completion within 10 s");
}

static void nvme_wait_ready(struct nvme *n, uint32_t ready) {
	for (uint64_t t0 = now_ns(); (*(volatile uint32_t *)(n->v.bar0 + NVME_CSTS) & 1) != ready;)
		if (now_ns() - t0 > 10000000000u) die("CSTS.RDY did not change within 10 s");
}

static void nvme_start(struct nvme *n) {
	vfio_open(&n->v, 1);
	n->next_iova = 1ull << 32;
	uint64_t cap = *(volatile uint64_t *)(n->v.bar0 + NVME_CAP);
	unsigned stride = 4u << ((cap >> 32) & 0xf);
	wr(&n->v, NVME_CC, 0);
	nvme_wait_ready(n, 0);
	nvme_queue_init(n, &n->admin, 0, stride);
	nvme_queue_init(n, &n->io, 1, stride);
	wr(&n->v, NVME_AQA, (NVME_DEPTH - 1) | (NVME_DEPTH - 1) << 16);
	wr(&n->v, NVME_ASQ, (uint32_t)n->admin.sq_iova);
	wr(&n->v, NVME_ASQ + 4, (uint32_t)(n->admin.sq_iova >> 32));
	wr(&n->v, NVME_ACQ, (uint32_t)n->admin.cq_iova);
	wr(&n->v, NVME_ACQ + 4, (uint32_t)(n->admin.cq_iova >> 32));
	wr(&n->v, NVME_CC, 1 | 6 << 16 | 4 << 20);
	nvme_wait_ready(n, 1);
	/* Create I/O CQ 1 (contiguous, no interrupts), then SQ 1 on it. */
	nvme_admin(n, 0x05, n->io.cq_iova, (NVME_DEPTH - 1) << 16 | 1, 0x1);
	nvme_admin(n, 0x01, n->io.sq_iova, (NVME_DEPTH - 1) << 16 | 1, 1 << 16 | 0x1);
	nvme_dma(n, 32 * NVME_PAGE, &n->data_iova);
}

/* 4 KiB reads (8 blocks of 512) at `qd` in flight; ns per read. */
static double nvme_reads(struct nvme *n, uint64_t total, uint64_t qd) {
	uint64_t submitted = 0, done = 0, t0 = now_ns();
	for (; submitted < qd && submitted < total; submitted++)
		nvme_submit(&n->io, 0x02, 1, n->data_iova + (submitted % 32) * NVME_PAGE, (uint32_t)(submitted % 2048) * 8, 0, 7);
	while (done < total) {
		unsigned got = nvme_reap(&n->io);
		done += got;
		for (; got > 0 && submitted < total; got--, submitted++)
			nvme_submit(&n->io, 0x02, 1, n->data_iova + (submitted % 32) * NVME_PAGE, (uint32_t)(submitted % 2048) * 8, 0, 7);
	}
	return (double)(now_ns() - t0) / (double)total;
}

static double case_nvme(void) {
	struct nvme n;
	uint64_t count = num("count", "2000"), qd = num("qd", "1");
	nvme_start(&n);
	nvme_reads(&n, count / 4 + 1, qd); /* untimed */
	double ns = nvme_reads(&n, count, qd);
	wr(&n.v, NVME_CC, 0);
	nvme_wait_ready(&n, 0);
	return ns;
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: ref CASE threads=N [key=value...]\n");
		return 2;
	}
	nargs = argc - 2;
	args = argv + 2;
	for (uint64_t t = 1; t < num("threads", "1"); t++) {
		pthread_t id;
		if (pthread_create(&id, NULL, sleeper, NULL) != 0) die("pthread_create");
	}
	const char *c = argv[1];
	double ns = !strcmp(c, "eventfd-write")   ? case_eventfd_write()
	            : !strcmp(c, "eventfd-epoll") ? case_eventfd_epoll()
	            : !strcmp(c, "dmabuf")        ? best(dmabuf, NULL)
	            : !strcmp(c, "ram-read")      ? case_ram(ram_read)
	            : !strcmp(c, "ram-write")     ? case_ram(ram_write)
	            : !strcmp(c, "populate")      ? case_populate()
	            : !strcmp(c, "group-status")  ? case_group_status()
	            : !strcmp(c, "map")           ? case_map()
	            : !strcmp(c, "msi")           ? case_msi()
	            : !strcmp(c, "dma")           ? case_dma()
	            : !strcmp(c, "nvme")          ? case_nvme()
	                                          : -1;
	if (ns < 0) {
		fprintf(stderr, "ref: unknown case %s\n", c);
		return 2;
	}
	printf("%.3f\n", ns);
	return 0;
}
