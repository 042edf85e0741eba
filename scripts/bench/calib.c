/*
 * Calibration for `npm run bench`: the least a JS → C call can cost on this
 * machine, so the tables can say how much of a JS/C gap is the call itself
 * and how much our addon and lib/ add. Plain C against Node-API, built at
 * bench time (`cc -O2 -shared`, see lib/ref.js) into .cache/bench/calib.node.
 * Not part of the package.
 *
 *   noop()                      nothing: the bare cost of crossing into C
 *   ioctlInt(fd, request, arg)  ioctl with an integer argument (KVM_CHECK_EXTENSION)
 *   groupStatus(fd)             VFIO_GROUP_GET_STATUS on a stack struct, returns flags
 *   tagged.check()              napi_check_object_type_tag + napi_unwrap on `this`,
 *                               what node-addon-api + our wrap.h do per method call
 *   tagged.checkTag()           napi_check_object_type_tag alone
 *   tagged.unwrap()             napi_unwrap alone
 *   mmapBuffer(fd, offset, size) an ArrayBuffer over mmap(MAP_SHARED) of a device
 *                               fd: what register access through a typed-array
 *                               view (no call per access) would cost — a
 *                               measurement of a design option, not a proposal
 *                               to ship this code
 *   munmapBuffer(arrayBuffer)   detach it and munmap now (a BAR mmap keeps the
 *                               device, so its group, busy until munmap)
 */
#define NAPI_VERSION 8
#include <errno.h>
#include <linux/vfio.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

static const napi_type_tag kTag = {0x6e1f1a2b3c4d5e6fULL, 0x0123456789abcdefULL};
static int kWrapped;

static napi_value throw_errno(napi_env env, const char *what) {
	napi_throw_error(env, "ERR_CALIB", what);
	return NULL;
}

static napi_value noop(napi_env env, napi_callback_info info) {
	(void)env;
	(void)info;
	return NULL;
}

static napi_value ioctl_int(napi_env env, napi_callback_info info) {
	size_t argc = 3;
	napi_value argv[3];
	int32_t fd, arg;
	uint32_t request;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
	    napi_get_value_uint32(env, argv[1], &request) != napi_ok || napi_get_value_int32(env, argv[2], &arg) != napi_ok)
		return throw_errno(env, "ioctlInt(fd, request, arg): numbers");
	int r = ioctl(fd, request, (unsigned long)arg);
	if (r < 0) return throw_errno(env, strerror(errno));
	napi_value out;
	napi_create_int32(env, r, &out);
	return out;
}

static napi_value group_status(napi_env env, napi_callback_info info) {
	size_t argc = 1;
	napi_value argv[1];
	int32_t fd;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return throw_errno(env, "groupStatus(fd)");
	struct vfio_group_status status = {.argsz = sizeof status};
	if (ioctl(fd, VFIO_GROUP_GET_STATUS, &status) < 0) return throw_errno(env, strerror(errno));
	napi_value out;
	napi_create_uint32(env, status.flags, &out);
	return out;
}

static napi_value tagged_check(napi_env env, napi_callback_info info) {
	napi_value self;
	bool ok = false;
	void *data = NULL;
	napi_get_cb_info(env, info, NULL, NULL, &self, NULL);
	if (napi_check_object_type_tag(env, self, &kTag, &ok) != napi_ok || !ok) return throw_errno(env, "not tagged");
	napi_unwrap(env, self, &data);
	napi_value out;
	napi_get_boolean(env, data == &kWrapped, &out);
	return out;
}

static napi_value tagged_check_tag(napi_env env, napi_callback_info info) {
	napi_value self, out;
	bool ok = false;
	napi_get_cb_info(env, info, NULL, NULL, &self, NULL);
	napi_check_object_type_tag(env, self, &kTag, &ok);
	napi_get_boolean(env, ok, &out);
	return out;
}

static napi_value tagged_unwrap(napi_env env, napi_callback_info info) {
	napi_value self, out;
	void *data = NULL;
	napi_get_cb_info(env, info, NULL, NULL, &self, NULL);
	napi_unwrap(env, self, &data);
	napi_get_boolean(env, data == &kWrapped, &out);
	return out;
}

struct mapping {
	void *addr;
	size_t size;
};

static struct mapping *live[16];

static void unmap_buffer(napi_env env, void *data, void *hint) {
	(void)env;
	(void)data;
	struct mapping *m = hint;
	for (int i = 0; i < 16; i++)
		if (live[i] == m) live[i] = NULL;
	if (m->addr) munmap(m->addr, m->size);
	free(m);
}

static napi_value munmap_buffer(napi_env env, napi_callback_info info) {
	size_t argc = 1;
	napi_value argv[1];
	void *data = NULL;
	size_t length = 0;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 1 || napi_get_arraybuffer_info(env, argv[0], &data, &length) != napi_ok)
		return throw_errno(env, "munmapBuffer(arrayBuffer)");
	for (int i = 0; i < 16; i++) {
		if (live[i] && live[i]->addr == data) {
			napi_detach_arraybuffer(env, argv[0]);
			munmap(live[i]->addr, live[i]->size);
			live[i]->addr = NULL;
		}
	}
	return NULL;
}

static napi_value mmap_buffer(napi_env env, napi_callback_info info) {
	size_t argc = 3;
	napi_value argv[3];
	int32_t fd;
	int64_t offset, size;
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
	    napi_get_value_int64(env, argv[1], &offset) != napi_ok || napi_get_value_int64(env, argv[2], &size) != napi_ok)
		return throw_errno(env, "mmapBuffer(fd, offset, size): numbers");
	void *addr = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
	if (addr == MAP_FAILED) return throw_errno(env, strerror(errno));
	struct mapping *m = malloc(sizeof *m);
	m->addr = addr;
	m->size = (size_t)size;
	for (int i = 0; i < 16; i++) {
		if (!live[i]) {
			live[i] = m;
			break;
		}
	}
	napi_value out;
	if (napi_create_external_arraybuffer(env, addr, (size_t)size, unmap_buffer, m, &out) != napi_ok) {
		munmap(addr, (size_t)size);
		free(m);
		return throw_errno(env, "napi_create_external_arraybuffer");
	}
	return out;
}

static napi_value init(napi_env env, napi_value exports) {
	napi_property_descriptor props[] = {
		{"noop", NULL, noop, NULL, NULL, NULL, napi_default, NULL},
		{"ioctlInt", NULL, ioctl_int, NULL, NULL, NULL, napi_default, NULL},
		{"groupStatus", NULL, group_status, NULL, NULL, NULL, napi_default, NULL},
		{"mmapBuffer", NULL, mmap_buffer, NULL, NULL, NULL, napi_default, NULL},
		{"munmapBuffer", NULL, munmap_buffer, NULL, NULL, NULL, napi_default, NULL},
	};
	napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
	napi_value tagged, fn;
	napi_create_object(env, &tagged);
	napi_type_tag_object(env, tagged, &kTag);
	napi_wrap(env, tagged, &kWrapped, NULL, NULL, NULL);
	napi_create_function(env, "check", NAPI_AUTO_LENGTH, tagged_check, NULL, &fn);
	napi_set_named_property(env, tagged, "check", fn);
	napi_create_function(env, "checkTag", NAPI_AUTO_LENGTH, tagged_check_tag, NULL, &fn);
	napi_set_named_property(env, tagged, "checkTag", fn);
	napi_create_function(env, "unwrap", NAPI_AUTO_LENGTH, tagged_unwrap, NULL, &fn);
	napi_set_named_property(env, tagged, "unwrap", fn);
	napi_set_named_property(env, exports, "tagged", tagged);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
