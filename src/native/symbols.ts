/**
 * The Deno FFI symbol table of the libbpf shim (ffi/aegis_shim.h).
 *
 * One literal, the C prototype above every entry. The artifacts test
 * (tests/artifacts/symbols_test.ts) checks that every symbol here resolves
 * in the built shim, that the shim exports nothing else, and that each
 * entry's arity matches the prototype in the header.
 *
 * @module
 */

export const SHIM_API_VERSION = 6;

export const symbols = {
  // int aegis_shim_api_version(void);
  aegis_shim_api_version: { parameters: [], result: "i32" },
  // int aegis_libbpf_version(void);
  aegis_libbpf_version: { parameters: [], result: "i32" },
  // const char *aegis_shim_build_id(void);
  aegis_shim_build_id: { parameters: [], result: "pointer" },
  // int aegis_shim_path(char *buf, uint32_t cap);
  aegis_shim_path: { parameters: ["buffer", "u32"], result: "i32" },

  // void aegis_log_set_level(int level);
  aegis_log_set_level: { parameters: ["i32"], result: "void" },
  // int aegis_log_read(char *buf, uint32_t cap);
  aegis_log_read: { parameters: ["buffer", "u32"], result: "i32" },

  // struct aegis_obj *aegis_obj_open_mem(const void *buf, uint64_t len, const char *name, int *err);
  aegis_obj_open_mem: { parameters: ["buffer", "u64", "buffer", "buffer"], result: "pointer" },
  // int aegis_obj_prog_count(struct aegis_obj *obj);
  aegis_obj_prog_count: { parameters: ["pointer"], result: "i32" },
  // int aegis_obj_map_count(struct aegis_obj *obj);
  aegis_obj_map_count: { parameters: ["pointer"], result: "i32" },
  // int aegis_obj_prog_name(struct aegis_obj *obj, uint32_t idx, char *buf, uint32_t cap);
  aegis_obj_prog_name: { parameters: ["pointer", "u32", "buffer", "u32"], result: "i32" },
  // int aegis_obj_map_name(struct aegis_obj *obj, uint32_t idx, char *buf, uint32_t cap);
  aegis_obj_map_name: { parameters: ["pointer", "u32", "buffer", "u32"], result: "i32" },
  // int aegis_obj_prog_section(struct aegis_obj *obj, uint32_t idx, char *buf, uint32_t cap);
  aegis_obj_prog_section: { parameters: ["pointer", "u32", "buffer", "u32"], result: "i32" },
  // int aegis_obj_prog_set_autoload(struct aegis_obj *obj, const char *prog, int autoload);
  aegis_obj_prog_set_autoload: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  // int aegis_obj_map_set_max_entries(struct aegis_obj *obj, const char *map, uint32_t n);
  aegis_obj_map_set_max_entries: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  // int aegis_obj_map_set_pin_path(struct aegis_obj *obj, const char *map, const char *path);
  aegis_obj_map_set_pin_path: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  // int aegis_obj_load(struct aegis_obj *obj);
  aegis_obj_load: { parameters: ["pointer"], result: "i32" },
  // int aegis_obj_attach_all(struct aegis_obj *obj, int32_t *results, uint32_t cap);
  aegis_obj_attach_all: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  // int aegis_obj_attach_prog(struct aegis_obj *obj, const char *prog);
  aegis_obj_attach_prog: { parameters: ["pointer", "buffer"], result: "i32" },
  // int aegis_obj_detach_prog(struct aegis_obj *obj, const char *prog);
  aegis_obj_detach_prog: { parameters: ["pointer", "buffer"], result: "i32" },
  // int aegis_obj_link_pin(struct aegis_obj *obj, const char *prog, const char *path);
  aegis_obj_link_pin: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  // int aegis_obj_link_unpin(struct aegis_obj *obj, const char *prog);
  aegis_obj_link_unpin: { parameters: ["pointer", "buffer"], result: "i32" },
  // int aegis_obj_map_pin(struct aegis_obj *obj, const char *map, const char *path);
  aegis_obj_map_pin: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  // int aegis_obj_map_unpin(struct aegis_obj *obj, const char *map, const char *path);
  aegis_obj_map_unpin: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  // int aegis_obj_map_fd(struct aegis_obj *obj, const char *map);
  aegis_obj_map_fd: { parameters: ["pointer", "buffer"], result: "i32" },
  // int aegis_obj_prog_fd(struct aegis_obj *obj, const char *prog);
  aegis_obj_prog_fd: { parameters: ["pointer", "buffer"], result: "i32" },
  // void aegis_obj_close(struct aegis_obj *obj);
  aegis_obj_close: { parameters: ["pointer"], result: "void" },

  // int aegis_map_info(int fd, uint32_t *type, uint32_t *key_size, uint32_t *value_size, uint32_t *max_entries);
  aegis_map_info: { parameters: ["i32", "buffer", "buffer", "buffer", "buffer"], result: "i32" },
  // int aegis_obj_id(int fd, uint32_t *id);
  aegis_obj_id: { parameters: ["i32", "buffer"], result: "i32" },
  // int aegis_map_lookup(int fd, const void *key, void *value);
  aegis_map_lookup: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // int aegis_map_update(int fd, const void *key, const void *value, uint64_t flags);
  aegis_map_update: { parameters: ["i32", "buffer", "buffer", "u64"], result: "i32" },
  // int aegis_map_delete(int fd, const void *key);
  aegis_map_delete: { parameters: ["i32", "buffer"], result: "i32" },
  // int aegis_map_next_key(int fd, const void *key, void *next_key);
  aegis_map_next_key: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // int aegis_map_update_batch(int fd, const void *keys, const void *values, uint32_t *count, uint64_t flags);
  aegis_map_update_batch: {
    parameters: ["i32", "buffer", "buffer", "buffer", "u64"],
    result: "i32",
  },
  // int aegis_map_delete_batch(int fd, const void *keys, uint32_t *count);
  aegis_map_delete_batch: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // int aegis_map_dump(int fd, void *keys, void *values, uint32_t *count);
  aegis_map_dump: { parameters: ["i32", "buffer", "buffer", "buffer"], result: "i32" },
  // int aegis_num_possible_cpus(void);
  aegis_num_possible_cpus: { parameters: [], result: "i32" },
  // int aegis_obj_get_pinned(const char *path);
  aegis_obj_get_pinned: { parameters: ["buffer"], result: "i32" },
  // int aegis_fd_pin(int fd, const char *path);
  aegis_fd_pin: { parameters: ["i32", "buffer"], result: "i32" },
  // int aegis_fd_close(int fd);
  aegis_fd_close: { parameters: ["i32"], result: "i32" },

  // int aegis_btf_has_func(const char *name);
  aegis_btf_has_func: { parameters: ["buffer"], result: "i32" },
  // int aegis_landlock_abi(void);
  aegis_landlock_abi: { parameters: [], result: "i32" },
  // int aegis_clock_offset_ns(int64_t *out);
  aegis_clock_offset_ns: { parameters: ["buffer"], result: "i32" },
  // int aegis_no_new_privs(int set);
  aegis_no_new_privs: { parameters: ["i32"], result: "i32" },
  // int aegis_seccomp_install(uint32_t mode);
  aegis_seccomp_install: { parameters: ["u32"], result: "i32" },
  // int aegis_seccomp_names(char *buf, uint32_t cap);
  aegis_seccomp_names: { parameters: ["buffer", "u32"], result: "i32" },
  // int aegis_caps_limit(uint64_t keep, uint32_t *threads_out);
  aegis_caps_limit: { parameters: ["u64", "buffer"], result: "i32" },

  // struct aegis_ring *aegis_ring_open(int map_fd, int *err);
  aegis_ring_open: { parameters: ["i32", "buffer"], result: "pointer" },
  // int aegis_ring_drain(struct aegis_ring *ring, uint8_t *out, uint32_t cap, uint32_t *records);
  aegis_ring_drain: { parameters: ["pointer", "buffer", "u32", "buffer"], result: "i32" },
  // int64_t aegis_ring_avail(struct aegis_ring *ring);
  aegis_ring_avail: { parameters: ["pointer"], result: "i64" },
  // int aegis_ring_wait(struct aegis_ring *ring, int timeout_ms);
  aegis_ring_wait: { parameters: ["pointer", "i32"], result: "i32", nonblocking: true },
  // void aegis_ring_close(struct aegis_ring *ring);
  aegis_ring_close: { parameters: ["pointer"], result: "void" },

  // int aegis_unix_listen(const char *path, uint32_t mode, int backlog);
  aegis_unix_listen: { parameters: ["buffer", "u32", "i32"], result: "i32" },
  // int aegis_unix_accept(int lfd, int timeout_ms, int32_t *cred);
  aegis_unix_accept: { parameters: ["i32", "i32", "buffer"], result: "i32", nonblocking: true },
  // int aegis_sock_read(int fd, uint8_t *buf, uint32_t cap, int timeout_ms);
  aegis_sock_read: {
    parameters: ["i32", "buffer", "u32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  // int aegis_sock_write(int fd, const uint8_t *buf, uint32_t len, int timeout_ms);
  aegis_sock_write: {
    parameters: ["i32", "buffer", "u32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  // int aegis_sock_shutdown(int fd);
  aegis_sock_shutdown: { parameters: ["i32"], result: "i32" },
  // int aegis_sock_close(int fd);
  aegis_sock_close: { parameters: ["i32"], result: "i32" },

  // int aegis_sd_notify(const char *path, const uint8_t *msg, uint32_t len);
  aegis_sd_notify: { parameters: ["buffer", "buffer", "u32"], result: "i32" },
  // int aegis_raise_nofile(uint64_t target, uint64_t *out);
  aegis_raise_nofile: { parameters: ["u64", "buffer"], result: "i32" },

  // int aegis_probe_open(const char *cgroup_procs, const uint8_t *paths, uint32_t len, uint32_t n, int64_t *out, uint32_t timeout_ms);
  aegis_probe_open: {
    parameters: ["buffer", "buffer", "u32", "u32", "buffer", "u32"],
    result: "i32",
    nonblocking: true,
  },
  // int aegis_probe_kernel(const char *cgroup_procs, uint32_t ops, int64_t *out, uint32_t timeout_ms);
  aegis_probe_kernel: {
    parameters: ["buffer", "u32", "buffer", "u32"],
    result: "i32",
    nonblocking: true,
  },
  // int aegis_probe_connect(const char *cgroup_procs, uint32_t addr_be, uint32_t port, int64_t *out, uint32_t timeout_ms);
  aegis_probe_connect: {
    parameters: ["buffer", "u32", "u32", "buffer", "u32"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

export type ShimSymbols = typeof symbols;
export type ShimLibrary = Deno.DynamicLibrary<ShimSymbols>;
