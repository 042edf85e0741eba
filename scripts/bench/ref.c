/*
 * The C reference for `npm run bench`: the same kernel operations the JS
 * harness (scripts/bench/cases.js) issues through the vfio package, written
 * the way a C driver would, against the same uapi headers. Built at bench
 * time with the system compiler (`cc -O2`, see run.js) into .cache/bench/.
 *
 *   ref CASE [key=value...]
 *
 * Each run does its own setup (untimed), one untimed warm-up pass, then the
 * timed pass, and prints one JSON line: {"case":..., "metrics":{name:[ns...]}}.
 * Metric names and units are the ones cases.js reports, so the harness can
 * put both side by side. Errors go to stderr with a non-zero exit status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <stdarg.h>
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

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

/* edu registers (QEMU docs/specs/edu.rst) */
#define EDU_IDENT 0x00
#define EDU_LIVENESS 0x04
#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_CMD_START 0x1
#define EDU_CMD_TO_RAM 0x2
#define EDU_CMD_IRQ 0x4
#define EDU_BUFFER 0x40000

/* ---- small helpers ---------------------------------------------------- */

static void die(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fputs("ref: ", stderr);
	vfprintf(stderr, fmt, ap);
	if (errno) fprintf(stderr, ": %s", strerror(errno));
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* die() for a failure that is not a failed syscall: no errno text */
#define FAIL(...)          \
	do {                   \
		errno = 0;         \
		die(__VA_ARGS__);  \
	} while (0)

#define CHECK(expr, what)                 \
	do {                                  \
		errno = 0;                        \
		if ((expr) < 0) die("%s", what);  \
	} while (0)

static inline uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int nargs;
static char **args;

/* key=value arguments; a missing key without a default is an error */
static const char *arg_str(const char *key, const char *fallback) {
	size_t n = strlen(key);
	for (int i = 0; i < nargs; i++)
		if (strncmp(args[i], key, n) == 0 && args[i][n] == '=') return args[i] + n + 1;
	if (!fallback) FAIL("missing argument %s=", key);
	return fallback;
}

static uint64_t arg_u64(const char *key, const char *fallback) {
	return strtoull(arg_str(key, fallback), NULL, 0);
}

/* JSON output: {"case":"x","metrics":{"a":[1,2],"b":[3]}} */
static int first_metric = 1;
static void out_begin(const char *name) { printf("{\"case\":\"%s\",\"metrics\":{", name); }
static void out_metric(const char *name, const double *v, size_t n) {
	printf("%s\"%s\":[", first_metric ? "" : ",", name);
	for (size_t i = 0; i < n; i++) printf("%s%.1f", i ? "," : "", v[i]);
	putchar(']');
	first_metric = 0;
}
static void out_one(const char *name, double v) { out_metric(name, &v, 1); }
static void out_end(void) {
	puts("}}");
	fflush(stdout);
}

/* ---- VFIO setup (untimed) --------------------------------------------- */

struct vfio {
	int container, group, device;
	uint64_t bar0_offset, bar0_size, config_offset;
	volatile uint8_t *bar0;
};

static void vfio_open(struct vfio *v, int with_device) {
	char path[64];
	memset(v, 0, sizeof *v);
	v->device = -1;
	CHECK(v->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC), "open /dev/vfio/vfio");
	if (ioctl(v->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION) FAIL("VFIO API version");
	snprintf(path, sizeof path, "/dev/vfio/%s", arg_str("group", NULL));
	CHECK(v->group = open(path, O_RDWR | O_CLOEXEC), path);
	struct vfio_group_status status = {.argsz = sizeof status};
	CHECK(ioctl(v->group, VFIO_GROUP_GET_STATUS, &status), "VFIO_GROUP_GET_STATUS");
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) FAIL("group not viable");
	CHECK(ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container), "VFIO_GROUP_SET_CONTAINER");
	CHECK(ioctl(v->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), "VFIO_SET_IOMMU");
	if (!with_device) return;
	CHECK(v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, arg_str("bdf", NULL)), "VFIO_GROUP_GET_DEVICE_FD");
	struct vfio_region_info bar = {.argsz = sizeof bar, .index = VFIO_PCI_BAR0_REGION_INDEX};
	CHECK(ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &bar), "VFIO_DEVICE_GET_REGION_INFO(BAR0)");
	v->bar0_offset = bar.offset;
	v->bar0_size = bar.size;
	struct vfio_region_info cfg = {.argsz = sizeof cfg, .index = VFIO_PCI_CONFIG_REGION_INDEX};
	CHECK(ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &cfg), "VFIO_DEVICE_GET_REGION_INFO(config)");
	v->config_offset = cfg.offset;
	/* bus master enable (PCI command bit 2): edu's MSIs and DMA need it */
	uint16_t command;
	if (pread(v->device, &command, 2, (off_t)(cfg.offset + 4)) != 2) die("pread config");
	command |= 0x4;
	if (pwrite(v->device, &command, 2, (off_t)(cfg.offset + 4)) != 2) die("pwrite config");
	void *p = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, v->device, (off_t)bar.offset);
	if (p == MAP_FAILED) die("mmap BAR0");
	v->bar0 = p;
}

static void vfio_close(struct vfio *v) {
	if (v->bar0) munmap((void *)v->bar0, v->bar0_size);
	if (v->device >= 0) close(v->device);
	close(v->group);
	close(v->container);
}

static inline uint32_t mmio_read32(struct vfio *v, unsigned reg) {
	return *(volatile uint32_t *)(v->bar0 + reg);
}

static inline void mmio_write32(struct vfio *v, unsigned reg, uint32_t value) {
	*(volatile uint32_t *)(v->bar0 + reg) = value;
}

/*
 * The memory to map: anonymous (huge pages if `huge` is a page size), as
 * DmaBuffer.allocate() makes it, or MAP_SHARED of an inherited fd (`fd=N`:
 * the memfd the harness shares with us), as DmaBuffer.fromFd() does.
 * Not touched here: each case's untimed warm-up pass faults it in (through
 * the pinning itself), on both sides alike.
 */
static void *get_buffer(size_t size) {
	uint64_t huge = arg_u64("huge", "0");
	int fd = (int)arg_u64("fd", "-1");
	int flags = fd >= 0 ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS;
	if (fd < 0 && huge) flags |= MAP_HUGETLB | (__builtin_ctzll(huge) << MAP_HUGE_SHIFT);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (p == MAP_FAILED) die("mmap %zu bytes (fd %d, huge page size %" PRIu64 ")", size, fd, huge);
	return p;
}

static void map_dma(int container, void *vaddr, uint64_t iova, uint64_t size) {
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof map,
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)vaddr,
		.iova = iova,
		.size = size,
	};
	CHECK(ioctl(container, VFIO_IOMMU_MAP_DMA, &map), "VFIO_IOMMU_MAP_DMA");
}

static void unmap_dma(int container, uint64_t iova, uint64_t size) {
	struct vfio_iommu_type1_dma_unmap unmap = {.argsz = sizeof unmap, .iova = iova, .size = size};
	CHECK(ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap), "VFIO_IOMMU_UNMAP_DMA");
	if (unmap.size != size) FAIL("UNMAP_DMA unmapped %llu of %llu bytes", (unsigned long long)unmap.size, (unsigned long long)size);
}

/* ---- cases -------------------------------------------------------------- */

/* The ioctl numbers and sizes the harness needs for the npm `ioctl` package. */
static void case_consts(void) {
	printf("{\"VFIO_GROUP_GET_STATUS\":%lu,\"KVM_CHECK_EXTENSION\":%lu,\"KVM_CAP_DEVICE_CTRL\":%d,"
	       "\"VFIO_IOMMU_UNMAP_DMA\":%lu,\"sizeof_vfio_group_status\":%zu}\n",
	       (unsigned long)VFIO_GROUP_GET_STATUS, (unsigned long)KVM_CHECK_EXTENSION, KVM_CAP_DEVICE_CTRL,
	       (unsigned long)VFIO_IOMMU_UNMAP_DMA, sizeof(struct vfio_group_status));
}

/* fallocate the harness's memfd (fd=N size=S) once, so no later pass pays the zeroing. */
static void case_populate(void) {
	int fd = (int)arg_u64("fd", NULL);
	uint64_t size = arg_u64("size", NULL);
	uint64_t t0 = now_ns();
	CHECK(fallocate(fd, 0, 0, (off_t)size), "fallocate");
	out_begin("populate");
	out_one("fallocate", (double)(now_ns() - t0));
	out_end();
}

/* KVM_CHECK_EXTENSION(KVM_CAP_DEVICE_CTRL) on /dev/kvm, `iters` times. */
static void case_kvm_ext(void) {
	uint64_t iters = arg_u64("iters", "10000");
	int kvm;
	CHECK(kvm = open(arg_str("path", "/dev/kvm"), O_RDWR | O_CLOEXEC), "open /dev/kvm");
	uint64_t sink = 0;
	for (int pass = 0; pass < 2; pass++) {
		uint64_t t0 = now_ns();
		for (uint64_t i = 0; i < iters; i++) {
			int r = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_DEVICE_CTRL);
			if (r < 0) die("KVM_CHECK_EXTENSION");
			sink += (uint64_t)r;
		}
		uint64_t t1 = now_ns();
		if (pass == 1) {
			out_begin("kvm-ext");
			out_one("op", (double)(t1 - t0) / (double)iters);
			out_end();
		}
	}
	if (sink == 0) fprintf(stderr, "ref: KVM_CAP_DEVICE_CTRL reported 0\n");
	close(kvm);
}

/* VFIO_GROUP_GET_STATUS on a freshly opened group, `iters` times. */
static void case_group_status(void) {
	uint64_t iters = arg_u64("iters", "10000");
	char path[64];
	snprintf(path, sizeof path, "/dev/vfio/%s", arg_str("group", NULL));
	int group;
	CHECK(group = open(path, O_RDWR | O_CLOEXEC), path);
	uint32_t flags = 0;
	for (int pass = 0; pass < 2; pass++) {
		uint64_t t0 = now_ns();
		for (uint64_t i = 0; i < iters; i++) {
			struct vfio_group_status status = {.argsz = sizeof status};
			if (ioctl(group, VFIO_GROUP_GET_STATUS, &status) < 0) die("VFIO_GROUP_GET_STATUS");
			flags |= status.flags;
		}
		uint64_t t1 = now_ns();
		if (pass == 1) {
			out_begin("group-status");
			out_one("op", (double)(t1 - t0) / (double)iters);
			out_end();
		}
	}
	if (!(flags & VFIO_GROUP_FLAGS_VIABLE)) fprintf(stderr, "ref: group not viable\n");
	close(group);
}

/*
 * `count` chunks of `size` bytes of one buffer, each mapped at its own IOVA
 * (iova base + i*size), then each unmapped. Metrics per chunk: map, unmap,
 * and the pair. The warm-up pass does the same once.
 */
static void case_map(void) {
	uint64_t size = arg_u64("size", NULL), count = arg_u64("count", "1");
	uint64_t iova = arg_u64("iova", "0x40000000");
	uint64_t passes = arg_u64("passes", "1");
	struct vfio v;
	vfio_open(&v, 0);
	uint8_t *buf = get_buffer(size * count);
	double map_ns[64], unmap_ns[64];
	if (passes > 64) passes = 64;
	for (uint64_t pass = 0; pass <= passes; pass++) {
		uint64_t t0 = now_ns();
		for (uint64_t i = 0; i < count; i++) map_dma(v.container, buf + i * size, iova + i * size, size);
		uint64_t t1 = now_ns();
		for (uint64_t i = 0; i < count; i++) unmap_dma(v.container, iova + i * size, size);
		uint64_t t2 = now_ns();
		if (pass == 0) continue; /* warm-up */
		map_ns[pass - 1] = (double)(t1 - t0) / (double)count;
		unmap_ns[pass - 1] = (double)(t2 - t1) / (double)count;
	}
	double pair[64];
	for (uint64_t p = 0; p < passes; p++) pair[p] = map_ns[p] + unmap_ns[p];
	out_begin("map");
	out_metric("map", map_ns, passes);
	out_metric("unmap", unmap_ns, passes);
	out_metric("pair", pair, passes);
	out_end();
	munmap(buf, size * count);
	vfio_close(&v);
}

/*
 * Growth: one buffer of the largest size; map [0, s) then unmap it, for each
 * s in `sizes` (MiB, comma separated). Metric "map+unmap@<s>M" in ns.
 */
static void case_growth(void) {
	const char *list = arg_str("sizes", "64,128,256,512,1024");
	uint64_t iova = arg_u64("iova", "0x40000000");
	uint64_t sizes[16];
	int n = 0;
	uint64_t max = 0;
	for (const char *p = list; *p && n < 16;) {
		char *end;
		sizes[n] = strtoull(p, &end, 10) << 20;
		if (sizes[n] > max) max = sizes[n];
		n++;
		p = *end ? end + 1 : end;
	}
	struct vfio v;
	vfio_open(&v, 0);
	uint8_t *buf = get_buffer(max);
	/* warm-up: the largest size once, so that every page is in */
	map_dma(v.container, buf, iova, max);
	unmap_dma(v.container, iova, max);
	out_begin("growth");
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		map_dma(v.container, buf, iova, sizes[i]);
		uint64_t t1 = now_ns();
		unmap_dma(v.container, iova, sizes[i]);
		uint64_t t2 = now_ns();
		char name[64];
		snprintf(name, sizeof name, "map@%" PRIu64 "M", sizes[i] >> 20);
		out_one(name, (double)(t1 - t0));
		snprintf(name, sizeof name, "unmap@%" PRIu64 "M", sizes[i] >> 20);
		out_one(name, (double)(t2 - t1));
	}
	out_end();
	munmap(buf, max);
	vfio_close(&v);
}

/*
 * Event-loop lag, the C way: a pool thread does the MAP_DMA (as the addon's
 * mapAsync does on the libuv pool) while the main thread sleeps 1 ms at a
 * time and notes its longest gap between wake-ups beyond the 1 ms. On one
 * CPU this shows what the kernel lets any program's other thread do while a
 * pin runs, whatever the language. Memory as get_buffer(); `fresh=1` skips
 * the warm-up so the pin faults the pages in.
 */
struct job {
	int container, unmap;
	void *vaddr;
	uint64_t iova, size, duration;
	int done;
};

/*
 * One worker thread, created up front and woken per job through a condition
 * variable: what libuv's pool does for the addon's mapAsync. (A thread
 * created per job would not do: the scheduler treats a new thread and a
 * woken sleeper differently, and the latter is what Node has.)
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job *job;
	int quit;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0};

static void *pool_thread(void *unused) {
	(void)unused;
	pthread_mutex_lock(&pool.lock);
	for (;;) {
		while (!pool.job && !pool.quit) pthread_cond_wait(&pool.wake, &pool.lock);
		if (pool.quit) break;
		struct job *j = pool.job;
		pool.job = NULL;
		pthread_mutex_unlock(&pool.lock);
		uint64_t t0 = now_ns();
		if (j->unmap) unmap_dma(j->container, j->iova, j->size);
		else map_dma(j->container, j->vaddr, j->iova, j->size);
		j->duration = now_ns() - t0;
		__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
		pthread_mutex_lock(&pool.lock);
	}
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

static void pool_submit(struct job *j) {
	pthread_mutex_lock(&pool.lock);
	pool.job = j;
	pthread_cond_signal(&pool.wake);
	pthread_mutex_unlock(&pool.lock);
}

/* Longest gap between 1 ms sleeps beyond 1 ms, in ns, while `j` runs on the pool (NULL: for `idle_ns`). */
static double lag_while(struct job *j, uint64_t idle_ns) {
	/* the clock runs before the job is handed over, as the JS timer does: a stall in the hand-over counts */
	uint64_t start = now_ns(), last = start, max = 0;
	if (j) pool_submit(j);
	for (;;) {
		struct timespec d = {0, 1000000};
		nanosleep(&d, NULL);
		uint64_t t = now_ns();
		if (t - last > max) max = t - last;
		last = t;
		if (j ? __atomic_load_n(&j->done, __ATOMIC_ACQUIRE) : t - start >= idle_ns) break;
	}
	return max > 1000000 ? (double)(max - 1000000) : 0;
}

static void case_lag(void) {
	uint64_t size = arg_u64("size", NULL), iova = arg_u64("iova", "0x40000000");
	int fresh = (int)arg_u64("fresh", "0");
	pthread_t worker;
	if (pthread_create(&worker, NULL, pool_thread, NULL) != 0) die("pthread_create");
	struct vfio v;
	vfio_open(&v, 0);
	out_begin("lag");
	out_one("idle: max timer lag", lag_while(NULL, 300000000));
	for (int sync = 0; sync < 2; sync++) {
		uint8_t *buf = get_buffer(size);
		if (!fresh) {
			map_dma(v.container, buf, iova, size);
			unmap_dma(v.container, iova, size);
		}
		if (sync) {
			/* the caller's own thread: blocked for all of it */
			uint64_t t0 = now_ns();
			map_dma(v.container, buf, iova, size);
			double d = (double)(now_ns() - t0);
			out_one("map (sync): max timer lag", d);
			out_one("map (sync): duration", d);
			unmap_dma(v.container, iova, size);
		} else {
			struct job j = {.container = v.container, .vaddr = buf, .iova = iova, .size = size};
			out_one("mapAsync: max timer lag", lag_while(&j, 0));
			out_one("mapAsync: duration", (double)j.duration);
			struct job u = {.container = v.container, .unmap = 1, .iova = iova, .size = size};
			out_one("unmapAsync: max timer lag", lag_while(&u, 0));
		}
		munmap(buf, size);
	}
	out_end();
	pthread_mutex_lock(&pool.lock);
	pool.quit = 1;
	pthread_cond_signal(&pool.wake);
	pthread_mutex_unlock(&pool.lock);
	pthread_join(worker, NULL);
	vfio_close(&v);
}

/* BAR0 register access, `iters` times: mode mmap-read|mmap-write|pread|pwrite. */
static void case_bar(void) {
	const char *mode = arg_str("mode", NULL);
	uint64_t iters = arg_u64("iters", "10000");
	struct vfio v;
	vfio_open(&v, 1);
	int m = !strcmp(mode, "mmap-read") ? 0 : !strcmp(mode, "mmap-write") ? 1 : !strcmp(mode, "pread") ? 2
	      : !strcmp(mode, "pwrite") ? 3 : -1;
	if (m < 0) FAIL("unknown mode %s", mode);
	uint64_t sink = 0;
	double op = 0;
	for (int pass = 0; pass < 2; pass++) {
		uint64_t t0 = now_ns();
		for (uint64_t i = 0; i < iters; i++) {
			uint32_t value = (uint32_t)i;
			switch (m) {
			case 0: sink += mmio_read32(&v, EDU_IDENT); break;
			case 1: mmio_write32(&v, EDU_LIVENESS, value); break;
			case 2:
				if (pread(v.device, &value, 4, (off_t)(v.bar0_offset + EDU_IDENT)) != 4) die("pread");
				sink += value;
				break;
			case 3:
				if (pwrite(v.device, &value, 4, (off_t)(v.bar0_offset + EDU_LIVENESS)) != 4) die("pwrite");
				break;
			}
		}
		op = (double)(now_ns() - t0) / (double)iters;
	}
	if ((m == 0 || m == 2) && sink != iters * 2 * 0x010000edull) fprintf(stderr, "ref: unexpected ident reads\n");
	/* the device really saw the writes: liveness reads back the inverse */
	if (m == 1 || m == 3) {
		uint32_t last = (uint32_t)(iters - 1);
		if (mmio_read32(&v, EDU_LIVENESS) != ~last) fprintf(stderr, "ref: liveness did not read back ~%u\n", last);
	}
	out_begin("bar");
	out_one("op", op);
	out_end();
	vfio_close(&v);
}

/* MSI on an eventfd, watched with epoll. */
struct irq {
	int eventfd, epoll;
};

static void irq_enable(struct vfio *v, struct irq *q) {
	CHECK(q->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd");
	char buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
	struct vfio_irq_set *set = (struct vfio_irq_set *)buf;
	set->argsz = sizeof buf;
	set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_MSI_IRQ_INDEX;
	set->start = 0;
	set->count = 1;
	memcpy(set->data, &q->eventfd, sizeof(int32_t));
	CHECK(ioctl(v->device, VFIO_DEVICE_SET_IRQS, set), "VFIO_DEVICE_SET_IRQS");
	CHECK(q->epoll = epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = q->eventfd};
	CHECK(epoll_ctl(q->epoll, EPOLL_CTL_ADD, q->eventfd, &ev), "epoll_ctl");
}

/* Blocks until the eventfd fires; returns its count (reset to 0). */
static uint64_t irq_wait(struct irq *q) {
	struct epoll_event ev;
	for (;;) {
		int n = epoll_wait(q->epoll, &ev, 1, 10000);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) die("epoll_wait");
		if (n == 0) FAIL("no interrupt within 10 s");
		uint64_t count;
		if (read(q->eventfd, &count, sizeof count) == sizeof count) return count;
		if (errno != EAGAIN) die("read eventfd");
	}
}

static void irq_close(struct vfio *v, struct irq *q) {
	struct vfio_irq_set set = {.argsz = sizeof set, .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
	                           .index = VFIO_PCI_MSI_IRQ_INDEX, .start = 0, .count = 0};
	ioctl(v->device, VFIO_DEVICE_SET_IRQS, &set);
	close(q->epoll);
	close(q->eventfd);
}

static void edu_ack(struct vfio *v) {
	uint32_t pending = mmio_read32(v, EDU_IRQ_STATUS);
	if (pending) mmio_write32(v, EDU_IRQ_ACK, pending);
}

/* The user-space half of the interrupt path, on any host: write(eventfd) → epoll_wait returns. */
static void case_eventfd(void) {
	uint64_t count = arg_u64("count", "1000");
	struct irq q;
	CHECK(q.eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd");
	CHECK(q.epoll = epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = q.eventfd};
	CHECK(epoll_ctl(q.epoll, EPOLL_CTL_ADD, q.eventfd, &ev), "epoll_ctl");
	double *lat = calloc(count, sizeof *lat);
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t i = 0; i < count; i++) {
			uint64_t one = 1, t0 = now_ns();
			if (write(q.eventfd, &one, sizeof one) != sizeof one) die("write eventfd");
			irq_wait(&q);
			if (pass == 1) lat[i] = (double)(now_ns() - t0);
		}
	}
	out_begin("eventfd");
	out_metric("latency", lat, count);
	out_end();
	close(q.epoll);
	close(q.eventfd);
}

/* Interrupt latency: write edu's raise-interrupt register, epoll_wait the eventfd. */
static void case_irq(void) {
	uint64_t count = arg_u64("count", "200");
	struct vfio v;
	vfio_open(&v, 1);
	struct irq q;
	irq_enable(&v, &q);
	double *lat = calloc(count, sizeof *lat);
	for (int pass = 0; pass < 2; pass++) {
		uint64_t n = pass == 0 ? (count < 20 ? count : 20) : count;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t t0 = now_ns();
			mmio_write32(&v, EDU_IRQ_RAISE, 1);
			irq_wait(&q);
			uint64_t t1 = now_ns();
			edu_ack(&v);
			if (pass == 1) lat[i] = (double)(t1 - t0);
		}
	}
	out_begin("irq");
	out_metric("latency", lat, count);
	out_end();
	irq_close(&v, &q);
	vfio_close(&v);
}

/*
 * edu DMA round trip: map a 4 KiB buffer, DMA `bytes` RAM→device (IRQ on
 * completion), wait for the MSI, DMA device→RAM into the second half, wait,
 * compare, unmap. Metrics: the whole round trip, and "driver": the same
 * minus the two waits between starting a DMA and its interrupt arriving.
 */
static void case_dma(void) {
	uint64_t count = arg_u64("count", "5"), bytes = arg_u64("bytes", "1024");
	uint64_t iova = arg_u64("iova", "0x100000");
	if (bytes == 0 || bytes > 2048) FAIL("bytes must be 1..2048");
	struct vfio v;
	vfio_open(&v, 1);
	struct irq q;
	irq_enable(&v, &q);
	uint8_t *buf = get_buffer(4096);
	double *total = calloc(count, sizeof *total), *driver = calloc(count, sizeof *driver);
	for (int pass = 0; pass < 2; pass++) {
		uint64_t n = pass == 0 ? 1 : count;
		for (uint64_t i = 0; i < n; i++) {
			for (uint64_t b = 0; b < bytes; b++) buf[b] = (uint8_t)(b * 7 + i + 1);
			memset(buf + 2048, 0, bytes);
			uint64_t t0 = now_ns();
			map_dma(v.container, buf, iova, 4096);
			mmio_write32(&v, EDU_DMA_SRC, (uint32_t)iova);
			mmio_write32(&v, EDU_DMA_DST, EDU_BUFFER);
			mmio_write32(&v, EDU_DMA_COUNT, (uint32_t)bytes);
			mmio_write32(&v, EDU_DMA_CMD, EDU_CMD_START | EDU_CMD_IRQ);
			uint64_t w0 = now_ns();
			irq_wait(&q);
			uint64_t w1 = now_ns();
			edu_ack(&v);
			mmio_write32(&v, EDU_DMA_SRC, EDU_BUFFER);
			mmio_write32(&v, EDU_DMA_DST, (uint32_t)(iova + 2048));
			mmio_write32(&v, EDU_DMA_COUNT, (uint32_t)bytes);
			mmio_write32(&v, EDU_DMA_CMD, EDU_CMD_START | EDU_CMD_TO_RAM | EDU_CMD_IRQ);
			uint64_t w2 = now_ns();
			irq_wait(&q);
			uint64_t w3 = now_ns();
			edu_ack(&v);
			int same = memcmp(buf, buf + 2048, bytes) == 0;
			unmap_dma(v.container, iova, 4096);
			uint64_t t1 = now_ns();
			if (!same) FAIL("DMA round trip: the bytes that came back differ");
			if (pass == 1) {
				total[i] = (double)(t1 - t0);
				driver[i] = (double)((t1 - t0) - (w1 - w0) - (w3 - w2));
			}
		}
	}
	out_begin("dma");
	out_metric("roundtrip", total, count);
	out_metric("driver", driver, count);
	out_end();
	munmap(buf, 4096);
	irq_close(&v, &q);
	vfio_close(&v);
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: ref consts|populate|kvm-ext|group-status|map|growth|lag|bar|eventfd|irq|dma [key=value...]\n");
		return 2;
	}
	nargs = argc - 2;
	args = argv + 2;
	const char *c = argv[1];
	if (!strcmp(c, "consts")) case_consts();
	else if (!strcmp(c, "populate")) case_populate();
	else if (!strcmp(c, "kvm-ext")) case_kvm_ext();
	else if (!strcmp(c, "group-status")) case_group_status();
	else if (!strcmp(c, "map")) case_map();
	else if (!strcmp(c, "growth")) case_growth();
	else if (!strcmp(c, "lag")) case_lag();
	else if (!strcmp(c, "eventfd")) case_eventfd();
	else if (!strcmp(c, "bar")) case_bar();
	else if (!strcmp(c, "irq")) case_irq();
	else if (!strcmp(c, "dma")) case_dma();
	else {
		fprintf(stderr, "ref: unknown case %s\n", c);
		return 2;
	}
	return 0;
}
