// ztctl_netns: the few socket operations Node cannot do itself. Create a TCP or UDP socket inside another
// network namespace (setns on the calling thread, then always switch back), set SO_MARK / SO_REUSEPORT /
// IP_TRANSPARENT, and read SO_ORIGINAL_DST. Plus two memory calls for the idle agent's trim: glibc's
// malloc_trim, and MADV_DONTNEED on read-only, file-backed mappings that hold no private (COW) page.
// Plain C over N-API, so one build serves every Node version.
// Errors are thrown as JS Errors with `code` = errno name and `syscall`; the TS wrapper turns them into
// ZtErrors.
#define _GNU_SOURCE
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

#define MAX_PATH_BYTES 4096
#define LISTEN_BACKLOG 511

static void throw_errno(napi_env env, const char *syscall_name, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", syscall_name, strerror(err));
  napi_value error, code, msg, sys;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &error);
  const char *name = strerrorname_np(err);
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_set_named_property(env, error, "code", code);
  napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, error, "syscall", sys);
  napi_value errnum;
  napi_create_int32(env, err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_throw(env, error);
}

// Options shared by every socket-creating call.
typedef struct {
  char netns[MAX_PATH_BYTES]; // empty: the current namespace
  int has_mark;
  uint32_t mark;
  int reuse_port;
  int transparent;
} socket_options;

// The namespace switch: enter `path` on this thread, remembering where we came from.
typedef struct {
  int saved_fd;
  int entered;
} netns_guard;

static int netns_enter(netns_guard *guard, const char *path, const char **failed_call) {
  guard->saved_fd = -1;
  guard->entered = 0;
  if (path[0] == '\0') return 0;
  char self[64];
  snprintf(self, sizeof self, "/proc/self/task/%ld/ns/net", (long)syscall(SYS_gettid));
  guard->saved_fd = open(self, O_RDONLY | O_CLOEXEC);
  if (guard->saved_fd < 0) {
    *failed_call = "open(current netns)";
    return errno;
  }
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    close(guard->saved_fd);
    *failed_call = "open(netns)";
    return err;
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int err = errno;
    close(target);
    close(guard->saved_fd);
    *failed_call = "setns";
    return err;
  }
  close(target);
  guard->entered = 1;
  return 0;
}

static void netns_leave(netns_guard *guard) {
  if (!guard->entered) return;
  // Switching back must never fail: a main thread stuck in a pod's namespace would silently send every
  // later socket of the agent through that pod. Abort rather than continue in the wrong namespace.
  if (setns(guard->saved_fd, CLONE_NEWNET) != 0) {
    fprintf(stderr, "ztctl_netns: cannot return to the original network namespace: %s\n", strerror(errno));
    abort();
  }
  close(guard->saved_fd);
  guard->entered = 0;
}

static int apply_socket_options(int fd, const socket_options *options, const char **failed_call) {
  int one = 1;
  if (options->has_mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &options->mark, sizeof options->mark) != 0) {
    *failed_call = "setsockopt(SO_MARK)";
    return errno;
  }
  if (options->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    *failed_call = "setsockopt(SO_REUSEPORT)";
    return errno;
  }
  if (options->transparent) {
    int domain = 0;
    socklen_t len = sizeof domain;
    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
    int rc = domain == AF_INET6 ? setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one)
                                : setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one);
    if (rc != 0) {
      *failed_call = "setsockopt(IP_TRANSPARENT)";
      return errno;
    }
  }
  return 0;
}

// ---- argument helpers -------------------------------------------------------------------------

static int get_string(napi_env env, napi_value value, char *out, size_t size) {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, out, size, &length) != napi_ok) return -1;
  return length + 1 >= size ? -1 : 0;
}

static int get_bool_property(napi_env env, napi_value object, const char *key) {
  napi_value value;
  bool result = false;
  if (napi_get_named_property(env, object, key, &value) != napi_ok) return 0;
  napi_valuetype type;
  napi_typeof(env, value, &type);
  if (type == napi_boolean) napi_get_value_bool(env, value, &result);
  return result ? 1 : 0;
}

// options: {netns?: string, mark?: number, reusePort?: boolean, transparent?: boolean}
static int read_options(napi_env env, napi_value object, socket_options *options) {
  memset(options, 0, sizeof *options);
  napi_valuetype type;
  napi_typeof(env, object, &type);
  if (type != napi_object) return 0;
  napi_value value;
  if (napi_get_named_property(env, object, "netns", &value) == napi_ok) {
    napi_typeof(env, value, &type);
    if (type == napi_string && get_string(env, value, options->netns, sizeof options->netns) != 0) {
      napi_throw_type_error(env, "ZT_ERR_NETNS_ARGS", "netns path too long");
      return -1;
    }
  }
  if (napi_get_named_property(env, object, "mark", &value) == napi_ok) {
    napi_typeof(env, value, &type);
    if (type == napi_number) {
      options->has_mark = 1;
      napi_get_value_uint32(env, value, &options->mark);
    }
  }
  options->reuse_port = get_bool_property(env, object, "reusePort");
  options->transparent = get_bool_property(env, object, "transparent");
  return 0;
}

static napi_value int_value(napi_env env, int number) {
  napi_value value;
  napi_create_int32(env, number, &value);
  return value;
}

// "IP" + port → a socket address; returns the family (AF_INET/AF_INET6), or -1 when HOST is not an IP.
static int parse_address(const char *host, uint32_t port, struct sockaddr_storage *address, socklen_t *address_len) {
  memset(address, 0, sizeof *address);
  struct sockaddr_in *v4 = (struct sockaddr_in *)address;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)address;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    *address_len = sizeof *v4;
    return AF_INET;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    *address_len = sizeof *v6;
    return AF_INET6;
  }
  return -1;
}

// ---- exported functions ----------------------------------------------------------------------

// The shared body of listenTcp and bindUdp: parse (host, port, options), create a socket of TYPE inside
// the netns with the options applied, bind it, and for SOCK_STREAM listen. Returns the fd, or NULL with
// a JS exception pending.
static napi_value bound_socket(napi_env env, napi_callback_info info, int type, const char *name) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char host[64];
  uint32_t port = 0;
  socket_options options;
  char message[96];
  if (argc < 2 || get_string(env, argv[0], host, sizeof host) != 0 || napi_get_value_uint32(env, argv[1], &port) != napi_ok || port > 65535) {
    snprintf(message, sizeof message, "%s(host, port, options): bad arguments", name);
    napi_throw_type_error(env, "ZT_ERR_NETNS_ARGS", message);
    return NULL;
  }
  if (read_options(env, argc > 2 ? argv[2] : NULL, &options) != 0) return NULL;

  struct sockaddr_storage address;
  socklen_t address_len;
  int family = parse_address(host, port, &address, &address_len);
  if (family < 0) {
    snprintf(message, sizeof message, "%s: host must be an IP address", name);
    napi_throw_type_error(env, "ZT_ERR_NETNS_ARGS", message);
    return NULL;
  }

  netns_guard guard;
  const char *failed_call = NULL;
  int err = netns_enter(&guard, options.netns, &failed_call);
  if (err != 0) {
    throw_errno(env, failed_call, err);
    return NULL;
  }
  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = errno;
    failed_call = "socket";
  } else {
    int one = 1;
    // A restarted listener must bind while the old one's connections linger in TIME_WAIT.
    if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    err = apply_socket_options(fd, &options, &failed_call);
    if (err == 0 && bind(fd, (struct sockaddr *)&address, address_len) != 0) {
      err = errno;
      failed_call = "bind";
    }
    if (err == 0 && type == SOCK_STREAM && listen(fd, LISTEN_BACKLOG) != 0) {
      err = errno;
      failed_call = "listen";
    }
    if (err != 0) close(fd);
  }
  netns_leave(&guard);
  if (err != 0) {
    throw_errno(env, failed_call, err);
    return NULL;
  }
  return int_value(env, fd);
}

// listenTcp(host: string, port: number, options) → fd of a non-blocking listening socket
static napi_value listen_tcp(napi_env env, napi_callback_info info) {
  return bound_socket(env, info, SOCK_STREAM, "listenTcp");
}

// bindUdp(host: string, port: number, options) → fd of a non-blocking UDP socket bound inside the netns
// (node:dgram adopts it with `socket.bind({fd})`). Used for the in-pod DNS listener and its upstream socket.
static napi_value bind_udp(napi_env env, napi_callback_info info) {
  return bound_socket(env, info, SOCK_DGRAM, "bindUdp");
}

// tcpSocket(family: 4 | 6, options) → fd of an unconnected non-blocking TCP socket
#define MAX_SOCKET_BATCH 64

// COUNT unconnected TCP sockets inside the namespace of OPTIONS (one switch there and back for all of
// them: the switch costs several times a socket). 0, or an errno with FAILED_CALL; none left open then.
static int make_tcp_sockets(uint32_t family_number, const socket_options *options, uint32_t count, int *fds, const char **failed_call) {
  netns_guard guard;
  int err = netns_enter(&guard, options->netns, failed_call);
  if (err != 0) return err;
  uint32_t made = 0;
  for (; made < count && err == 0; made++) {
    int fd = socket(family_number == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      err = errno;
      *failed_call = "socket";
      break;
    }
    fds[made] = fd;
    err = apply_socket_options(fd, options, failed_call);
  }
  netns_leave(&guard);
  if (err != 0) for (uint32_t i = 0; i < made; i++) close(fds[i]);
  return err;
}

// tcpSocket(family, options?, count?): an unconnected socket's fd; with COUNT (1..64), an array of that many.
static napi_value tcp_socket(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t family_number = 0, count = 1;
  socket_options options;
  if (argc < 1 || napi_get_value_uint32(env, argv[0], &family_number) != napi_ok || (family_number != 4 && family_number != 6)) {
    napi_throw_type_error(env, "ZT_ERR_NETNS_ARGS", "tcpSocket(family, options): family must be 4 or 6");
    return NULL;
  }
  int batch = argc > 2;
  if (batch && (napi_get_value_uint32(env, argv[2], &count) != napi_ok || count < 1 || count > MAX_SOCKET_BATCH)) {
    napi_throw_type_error(env, "ZT_ERR_NETNS_ARGS", "tcpSocket(family, options, count): count must be 1..64");
    return NULL;
  }
  if (read_options(env, argc > 1 ? argv[1] : NULL, &options) != 0) return NULL;
  int fds[MAX_SOCKET_BATCH];
  const char *failed_call = NULL;
  int err = make_tcp_sockets(family_number, &options, count, fds, &failed_call);
  if (err != 0) {
    throw_errno(env, failed_call, err);
    return NULL;
  }
  if (!batch) return int_value(env, fds[0]);
  napi_value result;
  napi_create_array_with_length(env, count, &result);
  for (uint32_t i = 0; i < count; i++) napi_set_element(env, result, i, int_value(env, fds[i]));
  return result;
}

// Reads argv[0] as a file descriptor; on failure throws a TypeError naming the call and returns -1.
static int32_t read_fd(napi_env env, size_t argc, napi_value *argv, const char *usage) {
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "ZT_ERR_NETNS_ARGS", usage);
    return -1;
  }
  return fd;
}

// originalDst(fd) → {address, port, family}: the destination before a REDIRECT/DNAT rewrote it
static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = read_fd(env, argc, argv, "originalDst(fd): fd must be a non-negative integer");
  if (fd < 0) return NULL;
  int domain = 0;
  socklen_t domain_len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &domain_len) != 0) {
    throw_errno(env, "getsockopt(SO_DOMAIN)", errno);
    return NULL;
  }
  struct sockaddr_storage address;
  memset(&address, 0, sizeof address);
  socklen_t address_len = sizeof address;
  int rc = domain == AF_INET6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &address, &address_len)
                              : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &address, &address_len);
  if (rc != 0) {
    throw_errno(env, "getsockopt(SO_ORIGINAL_DST)", errno);
    return NULL;
  }
  char text[INET6_ADDRSTRLEN];
  int port;
  int family;
  if (address.ss_family == AF_INET6) {
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&address;
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    port = ntohs(v6->sin6_port);
    family = 6;
  } else {
    struct sockaddr_in *v4 = (struct sockaddr_in *)&address;
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    port = ntohs(v4->sin_port);
    family = 4;
  }
  napi_value result, address_value;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &address_value);
  napi_set_named_property(env, result, "address", address_value);
  napi_set_named_property(env, result, "port", int_value(env, port));
  napi_set_named_property(env, result, "family", int_value(env, family));
  return result;
}

// setMark(fd, mark)
static napi_value set_mark(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = read_fd(env, argc, argv, "setMark(fd, mark): bad arguments");
  if (fd < 0) return NULL;
  uint32_t mark = 0;
  if (argc < 2 || napi_get_value_uint32(env, argv[1], &mark) != napi_ok) {
    napi_throw_type_error(env, "ZT_ERR_NETNS_ARGS", "setMark(fd, mark): bad arguments");
    return NULL;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
    throw_errno(env, "setsockopt(SO_MARK)", errno);
    return NULL;
  }
  return NULL;
}

// getMark(fd) → number (for tests and diagnostics)
static napi_value get_mark(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = read_fd(env, argc, argv, "getMark(fd): fd must be a non-negative integer");
  if (fd < 0) return NULL;
  uint32_t mark = 0;
  socklen_t len = sizeof mark;
  if (getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &len) != 0) {
    throw_errno(env, "getsockopt(SO_MARK)", errno);
    return NULL;
  }
  napi_value value;
  napi_create_uint32(env, mark, &value);
  return value;
}

// ---- memory: the idle agent's trim ---------------------------------------------------------------

// mallocTrim() → boolean: glibc returns free heap memory of every arena to the kernel (true when some
// was released). Without glibc (musl) there is nothing to call: false.
static napi_value malloc_trim_call(napi_env env, napi_callback_info info) {
  (void)info;
  int released = 0;
#ifdef __GLIBC__
  released = malloc_trim(0);
#endif
  napi_value value;
  napi_get_boolean(env, released != 0, &value);
  return value;
}

// An address or length argument: a BigInt (exact for any address) or a safe-integer Number.
static int get_u64(napi_env env, napi_value value, uint64_t *out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return -1;
  if (type == napi_bigint) {
    bool lossless = false;
    if (napi_get_value_bigint_uint64(env, value, out, &lossless) != napi_ok || !lossless) return -1;
    return 0;
  }
  if (type == napi_number) {
    double number = 0;
    napi_get_value_double(env, value, &number);
    if (!(number >= 0 && number <= 9007199254740991.0) || number != (double)(uint64_t)number) return -1;
    *out = (uint64_t)number;
    return 0;
  }
  return -1;
}

static void throw_coded(napi_env env, const char *code, const char *message) {
  napi_value error, code_value, msg;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &error);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value);
  napi_set_named_property(env, error, "code", code_value);
  napi_throw(env, error);
}

// Checks, from /proc/self/smaps, that [start, end) is covered without gaps by mappings that are
// read-only, backed by a file, and hold no anonymous page (resident or swapped): discarding the pages
// of such a mapping loses nothing, they fault back in from the page cache. Returns NULL when it is
// safe, else why not (written into `why`).
static const char *check_discardable(uint64_t start, uint64_t end, char *why, size_t why_size) {
  FILE *smaps = fopen("/proc/self/smaps", "re");
  if (smaps == NULL) {
    snprintf(why, why_size, "cannot read /proc/self/smaps: %s", strerror(errno));
    return why;
  }
  char *line = NULL;
  size_t line_size = 0;
  uint64_t covered = start; // everything below this is checked
  int in_range = 0;         // the current mapping overlaps [start, end)
  const char *result = NULL;
  while (result == NULL && getline(&line, &line_size, smaps) > 0) {
    uint64_t lo, hi, offset, inode;
    char perms[8];
    unsigned dev_major, dev_minor;
    int path_at = 0;
    if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64 " %n", &lo, &hi, perms, &offset, &dev_major, &dev_minor, &inode, &path_at) == 7) {
      in_range = hi > start && lo < end;
      if (!in_range) continue;
      if (lo > covered) {
        snprintf(why, why_size, "0x%" PRIx64 "-0x%" PRIx64 " is not mapped", covered, lo);
        result = why;
      } else if (perms[1] == 'w') {
        snprintf(why, why_size, "the mapping at 0x%" PRIx64 " is writable (%s)", lo, perms);
        result = why;
      } else if (inode == 0 || path_at == 0 || line[path_at] != '/') {
        snprintf(why, why_size, "the mapping at 0x%" PRIx64 " is anonymous, not backed by a file", lo);
        result = why;
      }
      if (hi > covered) covered = hi;
      continue;
    }
    if (!in_range) continue;
    unsigned long kib = 0;
    if ((sscanf(line, "Anonymous: %lu kB", &kib) == 1 || sscanf(line, "Swap: %lu kB", &kib) == 1) && kib != 0) {
      snprintf(why, why_size, "the mapping holds %lu kB of private (copy-on-write) pages", kib);
      result = why;
    }
  }
  if (result == NULL && covered < end) {
    snprintf(why, why_size, "0x%" PRIx64 "-0x%" PRIx64 " is not mapped", covered, end);
    result = why;
  }
  free(line);
  fclose(smaps);
  return result;
}

// discardFilePages(start, length): madvise(MADV_DONTNEED) on a page-aligned range of read-only,
// file-backed mappings without private pages (see check_discardable). The resident set shrinks; the
// page cache keeps the data. Refuses anything else with code ZT_ERR_MADVISE_ARGS or ZT_ERR_MADVISE_REFUSED.
static napi_value discard_file_pages(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint64_t start = 0, length = 0;
  if (argc < 2 || get_u64(env, argv[0], &start) != 0 || get_u64(env, argv[1], &length) != 0) {
    throw_coded(env, "ZT_ERR_MADVISE_ARGS", "discardFilePages(start, length): start and length must be non-negative integers (BigInt or Number)");
    return NULL;
  }
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  char message[192];
  if (length == 0 || start % page != 0 || length % page != 0 || start + length < start) {
    snprintf(message, sizeof message, "discardFilePages: 0x%" PRIx64 " + %" PRIu64 " bytes is not a non-empty range of whole %" PRIu64 "-byte pages", start, length, page);
    throw_coded(env, "ZT_ERR_MADVISE_ARGS", message);
    return NULL;
  }
  char why[160];
  if (check_discardable(start, start + length, why, sizeof why) != NULL) {
    snprintf(message, sizeof message, "refusing to discard 0x%" PRIx64 "-0x%" PRIx64 ": %s", start, start + length, why);
    throw_coded(env, "ZT_ERR_MADVISE_REFUSED", message);
    return NULL;
  }
  if (madvise((void *)(uintptr_t)start, length, MADV_DONTNEED) != 0) {
    throw_errno(env, "madvise(MADV_DONTNEED)", errno);
    return NULL;
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"listenTcp", NULL, listen_tcp, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tcpSocket", NULL, tcp_socket, NULL, NULL, NULL, napi_enumerable, NULL},
      {"bindUdp", NULL, bind_udp, NULL, NULL, NULL, napi_enumerable, NULL},
      {"originalDst", NULL, original_dst, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setMark", NULL, set_mark, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getMark", NULL, get_mark, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mallocTrim", NULL, malloc_trim_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"discardFilePages", NULL, discard_file_pages, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
