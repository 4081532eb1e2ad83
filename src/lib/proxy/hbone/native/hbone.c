// ztctl_hbone: the HBONE byte path in C — mutual TLS 1.3 (OpenSSL) + HTTP/2 CONNECT (nghttp2), both the
// copies Node itself links and exports, driven by libuv polls on Node's own event loop (no thread, no
// locks). It moves bytes and nothing else: every decision (which endpoint, is this peer pinned, revoked,
// authorized, which target) is made in TypeScript (src/lib/proxy/native-engine.ts), which gets events
// and answers with calls. Objects are named by ids with a generation, so a stale or garbage id from JS
// is refused, never dereferenced.
//
// Objects: TLS contexts, listeners (plain TCP for inbound tunnels, TLS for HBONE, or virtual: sessions
// that arrive over hub streams), sessions (one TLS connection + one nghttp2 session, client or server)
// and tunnels (one CONNECT stream joined to its "plain side"). A tunnel's plain side is a socket (a TCP
// connection, or one end of a socketpair whose other end JS holds), a layered session (the stream carries
// another TLS + HTTP/2 session end to end: the inner HBONE of a hub relay), or another stream (a hub
// splices two). Relays join an accepted plain connection to one the engine dials (plain ↔ plain, no
// stream). Events are queued while nghttp2 is on the stack and handed to JS only at the end of each
// libuv callback; objects are freed at that point too, never inside a callback that may still
// hold them. Work for another session (a layered session's bytes for its carrier, a splice's bytes for
// the other stream) is queued too and pumped at the end of the callback, never from inside nghttp2.
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

// ---- tuning (docs/hbone.md "Native data path") ----------------------------------------------------
#define STREAM_WINDOW (4 * 1024 * 1024)
#define CONNECTION_WINDOW (16 * 1024 * 1024)
#define MAX_FRAME_SIZE (1024 * 1024)
#define TLS_RECORD (16 * 1024)                  // the largest TLS record's plaintext
#define FRAME_HEADER 9                          // an HTTP/2 frame header
#define MAX_DATA_FRAME (64 * 1024 - FRAME_HEADER) // the largest DATA frame's payload we send (peer's limit permitting):
                                               // with its 9-byte header, four full TLS records
#define OUT_HIGH (256 * 1024)                // unsent ciphertext above which we stop producing frames
#define TX_CAP (128 * 1024)                     // plaintext gathered into one SSL_write (full TLS records)
#define RBUF_CAP (256 * 1024)
#define MAX_HEADER_VALUE 1024
#define HANDSHAKE_TIMEOUT_MS 10000          // client sessions: the pool's connect timeout overrides it
#define LINGER_MS 500
#define ACCEPT_BATCH 64
#define PREFACE_CHUNK 16384                 // bytes read per EV_DATA while JS parses a proxy handshake
#define MAX_LOCAL_WRITE (64 * 1024)           // bytes JS may queue towards a plain socket (handshake replies)
#define LAYERED_MAX_INPUT (4 * 1024 * 1024)   // ciphertext a layered session may hold unread (one TLS record)
#define FINISH_LINGER_MS 1000                 // after a refusal reply: how long the client may take to close

enum kind { K_FREE = 0, K_CONTEXT, K_LISTENER, K_SESSION, K_TUNNEL, K_RELAY };
enum event_type {
  EV_ACCEPT = 1, EV_SESSION_READY, EV_SESSION_FAILED, EV_SESSION_CLOSED, EV_RESPONSE, EV_REQUEST,
  EV_DIAL_RESULT, EV_CLOSED, EV_TLS_ERROR, EV_GOAWAY, EV_DATA,
};
// What a tunnel's stream is joined to.
enum plain_kind { P_FD = 0, P_INNER, P_SPLICE };

// What an HBONE listener bounds per session: the numbers come from TypeScript (src/lib/http2/server-bounds.ts,
// HBONE_BOUNDS), the same ones the node:http2 path enforces.
typedef struct limits {
  int max_streams;              // SETTINGS_MAX_CONCURRENT_STREAMS (nghttp2 refuses streams beyond it)
  int max_header_bytes;         // SETTINGS_MAX_HEADER_LIST_SIZE, enforced per request (decoded, + 32 per field)
  int max_header_pairs;
  double reset_burst;           // the peer's RST_STREAMs draw from a bucket of this size ...
  double reset_rate;            // ... refilled at this many per second; empty: GOAWAY(ENHANCE_YOUR_CALM), closed
  int handshake_timeout_ms;
  int idle_session_ms;          // a session without a tunnel this long is closed (GOAWAY); 0: never
} limits;

static const limits DEFAULT_LIMITS = {200, 16 * 1024, 64, 200, 50, HANDSHAKE_TIMEOUT_MS, 0};

// ---- ids --------------------------------------------------------------------------------------------
typedef struct {
  enum kind kind;
  uint32_t gen;
  void *ptr;
} slot;

static slot *slots;
static uint32_t slot_count, slot_cap, free_head = UINT32_MAX;
static uint32_t *free_next;

static double id_new(enum kind kind, void *ptr) {
  uint32_t index;
  if (free_head != UINT32_MAX) {
    index = free_head;
    free_head = free_next[index];
  } else {
    if (slot_count == slot_cap) {
      uint32_t cap = slot_cap ? slot_cap * 2 : 1024;
      slots = realloc(slots, cap * sizeof *slots);
      free_next = realloc(free_next, cap * sizeof *free_next);
      if (!slots || !free_next) abort();
      slot_cap = cap;
    }
    index = slot_count++;
    slots[index].gen = 0;
  }
  slots[index].gen++;
  slots[index].kind = kind;
  slots[index].ptr = ptr;
  return (double)slots[index].gen * 4294967296.0 + index;
}

static void id_free(double id) {
  uint32_t index = (uint32_t)((uint64_t)id & 0xffffffffu);
  slots[index].kind = K_FREE;
  slots[index].ptr = NULL;
  free_next[index] = free_head;
  free_head = index;
}

static void *id_get(double id, enum kind kind) {
  if (!(id >= 0) || id > 9007199254740991.0) return NULL;
  uint64_t raw = (uint64_t)id;
  uint32_t index = (uint32_t)(raw & 0xffffffffu), gen = (uint32_t)(raw >> 32);
  if (index >= slot_count || slots[index].kind != kind || slots[index].gen != gen) return NULL;
  return slots[index].ptr;
}

// ---- objects ----------------------------------------------------------------------------------------
typedef struct context {
  double id;
  SSL_CTX *ssl;
} context;

// A byte queue with a moving start: appends at the end, sends from the start, compacts only when full.
typedef struct bytes {
  char *data;
  size_t start, end, cap;
} bytes;

struct session;

typedef struct tunnel {
  double id;
  enum plain_kind kind;
  int fd;                       // P_FD: the plain socket; -1 once closed (or before the server dialled)
  struct session *inner;        // P_INNER: the session this stream carries (NULL once it ended)
  struct tunnel *peer;          // P_SPLICE: the stream this one is joined to (NULL once it ended)
  uv_poll_t *poll;
  int poll_mask;
  struct session *session;
  int32_t stream_id;
  int server;
  int established;              // bytes flow (client: 200 received; server: upstream connected)
  int dialing;
  int deferred;                 // nghttp2 waits for the plain side to become readable
  int plain_eof;                // the plain side sent FIN (END_STREAM follows)
  int peer_ended;               // END_STREAM received (FIN follows once pending is written)
  int shut_wr;
  int h2_closed;
  uint32_t rst_code;
  int status;                   // client: the response :status
  int responded;                // client: EV_RESPONSE sent for the current stream
  int released;                 // JS gave it up: no EV_CLOSED
  int closed_sent;
  int dead;
  int awaiting;                 // server: EV_REQUEST sent, JS has not answered yet
  int preface;                  // plain client: JS reads the first bytes (EV_DATA) before open()
  size_t preface_left;
  int finishing;                // plain client: JS gave up with a last message (write it, FIN, drain, close)
  bytes pending;                // bytes not yet written to the plain side (P_SPLICE: for the peer stream)
  size_t local_pending;         // of those, the first LOCAL_PENDING came from JS, not from the stream
  bytes early;                  // client: sent on the stream before the plain socket is read (proxy prefix)
  bytes reply;                  // client: written to the plain socket when 200 arrives (proxy success reply)
  uint64_t from_plain, to_plain;
  char error[200];
  uv_timer_t *timer;            // dial timeout, then linger
  uint32_t header_bytes, header_pairs; // of the request being received (server)
  char method[16];
  char authority[320];
  char forwarded[MAX_HEADER_VALUE + 1]; // server: the request's; client: the response's
  char hub[16];                 // server: the request's ztctl-hub header
  char reason[200];             // client: the response's ztctl-reason header
  struct tunnel *next, *prev;   // the session's tunnels
} tunnel;

typedef struct listener {
  double id;
  int fd;                       // -1: virtual (its sessions arrive over hub streams)
  uv_poll_t *poll;
  context *ctx;                 // NULL: plain TCP (inbound tunnel); else HBONE
  int keepalive_ms, keepalive_timeout_ms;
  limits limits;
} listener;

enum session_state { S_CONNECTING, S_HANDSHAKE, S_OPEN, S_CLOSED };

typedef struct session {
  double id;
  double listener_id;
  int fd;
  uv_poll_t *poll;
  int poll_mask;
  int server;
  enum session_state state;
  SSL *ssl;
  nghttp2_session *h2;
  bytes out;                    // ciphertext not yet written
  bytes in;                     // a socket session: ciphertext received, not yet taken by OpenSSL
  tunnel *tunnels;
  int goaway;
  int dead;
  uv_timer_t *timer;            // connect/handshake deadline, then keepalive
  int keepalive_ms, keepalive_timeout_ms;
  int ping_outstanding;
  uint64_t ping_sent;           // uv_hrtime() of the outstanding PING
  double rtt_us;                // the last PING round trip, -1 until one was measured
  tunnel *carrier;              // layered: the stream carrying this session (NULL: a socket, or it ended)
  int layered;
  BIO *rbio;                    // layered: ciphertext from the carrier, not yet decrypted
  int pump_queued;
  limits limits;
  double reset_tokens;
  uint64_t reset_refilled_at, idle_since;
  const char *ended_because;    // set by a callback that ends the session (a flood), for the message
  char remote[64];
} session;

static uv_loop_t *loop;

// ---- events to JS ------------------------------------------------------------------------------------
typedef struct event {
  int type;
  double id, n1, n2;
  char *s[4];
  char *data;                   // EV_DATA: bytes (handed to JS as a Buffer)
  size_t data_length;
} event;

static event *events;
static size_t event_count, event_cap;
static napi_env engine_env;
static napi_ref callback_ref;
static napi_async_context async_context;
static uv_async_t *dispatch_async;
static int dispatching;

static void emit(int type, double id, double n1, double n2, const char *s1, const char *s2, const char *s3, const char *s4) {
  if (event_count == event_cap) {
    event_cap = event_cap ? event_cap * 2 : 256;
    events = realloc(events, event_cap * sizeof *events);
    if (!events) abort();
  }
  event *ev = &events[event_count++];
  *ev = (event){.type = type, .id = id, .n1 = n1, .n2 = n2};
  const char *texts[4] = {s1, s2, s3, s4};
  for (int i = 0; i < 4; i++) ev->s[i] = texts[i] ? strdup(texts[i]) : NULL;
}

static void emit_data(double id, double n1, const char *data, size_t length) {
  emit(EV_DATA, id, n1, 0, NULL, NULL, NULL, NULL);
  event *ev = &events[event_count - 1];
  if (length == 0) return;
  ev->data = malloc(length);
  if (!ev->data) abort();
  memcpy(ev->data, data, length);
  ev->data_length = length;
}

static void dispatch(void) {
  if (dispatching || !engine_env || event_count == 0) return;
  dispatching = 1;
  napi_env env = engine_env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value callback, receiver;
  napi_get_reference_value(env, callback_ref, &callback);
  napi_get_global(env, &receiver);
  // JS may call in and queue more events meanwhile: they are dispatched in this same loop.
  for (size_t i = 0; i < event_count; i++) {
    event ev = events[i];
    if (ev.type == EV_REQUEST) {
      // Reset by the peer in the same read it arrived in (rapid reset): JS never sees it, nothing is dialled.
      tunnel *t = id_get(ev.id, K_TUNNEL);
      if (!t || t->dead || t->h2_closed || !t->session) {
        for (int k = 0; k < 4; k++) free(ev.s[k]);
        continue;
      }
    }
    napi_handle_scope inner;
    napi_open_handle_scope(env, &inner);
    napi_value argv[9];
    napi_create_int32(env, ev.type, &argv[0]);
    napi_create_double(env, ev.id, &argv[1]);
    napi_create_double(env, ev.n1, &argv[2]);
    napi_create_double(env, ev.n2, &argv[3]);
    for (int k = 0; k < 4; k++) {
      if (ev.s[k]) napi_create_string_utf8(env, ev.s[k], NAPI_AUTO_LENGTH, &argv[4 + k]);
      else napi_get_undefined(env, &argv[4 + k]);
      free(ev.s[k]);
    }
    if (ev.data) napi_create_buffer_copy(env, ev.data_length, ev.data, NULL, &argv[8]);
    else napi_get_undefined(env, &argv[8]);
    free(ev.data);
    napi_value result;
    if (napi_make_callback(env, async_context, receiver, callback, 9, argv, &result) == napi_pending_exception) {
      napi_value exception;
      napi_get_and_clear_last_exception(env, &exception);
      napi_fatal_exception(env, exception);
    }
    napi_close_handle_scope(env, inner);
  }
  event_count = 0;
  napi_close_handle_scope(env, scope);
  dispatching = 0;
}

// ---- the graveyard: objects die anywhere, are freed only at the end of a loop callback ---------------
static tunnel **dead_tunnels;
static size_t dead_tunnel_count, dead_tunnel_cap;
static session **dead_sessions;
static size_t dead_session_count, dead_session_cap;

static void bury(void ***list, size_t *count, size_t *cap, void *object) {
  if (*count == *cap) {
    *cap = *cap ? *cap * 2 : 64;
    *list = realloc(*list, *cap * sizeof **list);
    if (!*list) abort();
  }
  (*list)[(*count)++] = object;
}

static void free_handle(uv_handle_t *handle) { free(handle); }

static void close_handle(uv_handle_t *handle) {
  if (handle) uv_close(handle, free_handle);
}

static void tunnel_detach(tunnel *t, int stream_alive);

static void tunnel_free(tunnel *t) {
  tunnel_detach(t, 1);
  close_handle((uv_handle_t *)t->poll); // before close(fd): libuv forgets the fd number first
  t->poll = NULL;
  if (t->fd >= 0) close(t->fd);
  close_handle((uv_handle_t *)t->timer);
  free(t->pending.data);
  free(t->early.data);
  free(t->reply.data);
  id_free(t->id);
  free(t);
}

static void session_free(session *s) {
  while (s->tunnels) tunnel_detach(s->tunnels, 0);
  if (s->h2) nghttp2_session_del(s->h2);
  if (s->ssl) SSL_free(s->ssl); // and its BIOs (a layered session's rbio too)
  close_handle((uv_handle_t *)s->poll);
  close_handle((uv_handle_t *)s->timer);
  if (s->fd >= 0) close(s->fd);
  free(s->out.data);
  free(s->in.data);
  id_free(s->id);
  free(s);
}

static void reap(void) {
  // Tunnels first: a dead session's tunnels were detached from it when it died.
  for (size_t i = 0; i < dead_tunnel_count; i++) tunnel_free(dead_tunnels[i]);
  dead_tunnel_count = 0;
  for (size_t i = 0; i < dead_session_count; i++) session_free(dead_sessions[i]);
  dead_session_count = 0;
}

// Sessions that have work because of another one (a carrier's or a splice's bytes moved): pumped at
// the end of the callback, never from inside another session's nghttp2 call. Held by id: a session that
// died meanwhile is skipped.
static double *pump_ids;
static size_t pump_count, pump_cap;
static void session_pump(session *s);

static void pump_later(session *s) {
  if (!s || s->dead || s->pump_queued) return;
  if (pump_count == pump_cap) {
    pump_cap = pump_cap ? pump_cap * 2 : 64;
    pump_ids = realloc(pump_ids, pump_cap * sizeof *pump_ids);
    if (!pump_ids) abort();
  }
  s->pump_queued = 1;
  pump_ids[pump_count++] = s->id;
}

// A pump may queue others (inner ↔ carrier): the loop runs until the queue is empty. It converges: a
// session produces only while its socket (or its carrier's window) takes bytes.
static void run_pumps(void) {
  for (size_t i = 0; i < pump_count; i++) {
    session *s = id_get(pump_ids[i], K_SESSION);
    if (!s) continue;
    s->pump_queued = 0;
    session_pump(s);
  }
  pump_count = 0;
}

// The end of every libuv callback: pump what others woke, tell JS what happened, pump what JS's calls
// woke, then free what died.
static void settle(void) {
  run_pumps();
  dispatch();
  run_pumps();
  reap();
  if (event_count > 0) uv_async_send(dispatch_async);
}

// Calls from JS never call back into JS: their events go out on the next loop turn.
static void schedule_settle(void) {
  if ((event_count > 0 || pump_count > 0 || dead_tunnel_count > 0 || dead_session_count > 0) && !dispatching) uv_async_send(dispatch_async);
}

static void on_dispatch_async(uv_async_t *handle) {
  (void)handle;
  settle();
}

static void tunnel_kill(tunnel *t) {
  if (t->dead) return;
  t->dead = 1;
  bury((void ***)&dead_tunnels, &dead_tunnel_count, &dead_tunnel_cap, t);
}

// ---- small helpers -----------------------------------------------------------------------------------
static void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void format_address(const struct sockaddr_storage *address, char *out, size_t size) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (address->ss_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)address;
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    snprintf(out, size, "%s:%d", host, ntohs(v4->sin_port));
  } else if (address->ss_family == AF_INET6) {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)address;
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    // IPv4-mapped addresses read as plain IPv4, as normalizeIp() reports them.
    if (strncmp(host, "::ffff:", 7) == 0 && strchr(host + 7, '.')) snprintf(out, size, "%s:%d", host + 7, ntohs(v6->sin6_port));
    else snprintf(out, size, "[%s]:%d", host, ntohs(v6->sin6_port));
  } else {
    snprintf(out, size, "unknown");
  }
}

static int parse_address(const char *host, int port, struct sockaddr_storage *out, socklen_t *length) {
  memset(out, 0, sizeof *out);
  if (port < 0 || port > 65535) return -1;
  struct sockaddr_in *v4 = (struct sockaddr_in *)out;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *length = sizeof *v4;
    return 0;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    *length = sizeof *v6;
    return 0;
  }
  return -1;
}

static const char *errno_name(int err) {
  const char *name = strerrorname_np(err);
  return name ? name : "EUNKNOWN";
}

static void tls_error_text(const char *prefix, char *out, size_t size) {
  unsigned long code = ERR_get_error();
  char reason[160] = "";
  if (code) ERR_error_string_n(code, reason, sizeof reason);
  snprintf(out, size, "%s%s%s", prefix, code && prefix[0] ? ": " : "", code ? reason : (prefix[0] ? "" : "unknown error"));
  ERR_clear_error();
}

static size_t bytes_size(const bytes *buffer) { return buffer->end - buffer->start; }

static int bytes_append(bytes *buffer, const void *data, size_t length, size_t limit) {
  if (buffer->end + length > buffer->cap) {
    size_t grown_cap = buffer->cap ? buffer->cap : 64 * 1024;
    while (grown_cap < buffer->end + length) grown_cap *= 2;
    // The rest moves to the front when it is no longer than what was taken before it (so each byte moves
    // at most once), or when growing would pass LIMIT; else the buffer grows.
    if (buffer->start > 0 && (bytes_size(buffer) <= buffer->start || grown_cap > limit)) {
      memmove(buffer->data, buffer->data + buffer->start, buffer->end - buffer->start);
      buffer->end -= buffer->start;
      buffer->start = 0;
    }
    if (buffer->end + length > buffer->cap) {
      size_t cap = buffer->cap ? buffer->cap : 64 * 1024;
      while (cap < buffer->end + length) cap *= 2;
      if (cap > limit) return -1;
      char *grown = realloc(buffer->data, cap);
      if (!grown) return -1;
      buffer->data = grown;
      buffer->cap = cap;
    }
  }
  memcpy(buffer->data + buffer->end, data, length);
  buffer->end += length;
  return 0;
}

static void bytes_consumed(bytes *buffer, size_t count, size_t keep_cap) {
  buffer->start += count;
  if (buffer->start == buffer->end) {
    buffer->start = buffer->end = 0;
    if (buffer->cap > keep_cap) {
      free(buffer->data);
      buffer->data = NULL;
      buffer->cap = 0;
    }
  }
}

// Our write BIO: SSL_write appends records here, the session sends them in large writes.
static BIO_METHOD *out_method;

static int out_bio_write(BIO *bio, const char *data, size_t length, size_t *written) {
  if (bytes_append(BIO_get_data(bio), data, length, SIZE_MAX) < 0) return 0;
  *written = length;
  return 1;
}

static long out_bio_ctrl(BIO *bio, int cmd, long num, void *ptr) {
  (void)bio, (void)num, (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *bio) {
  BIO_set_init(bio, 1);
  return 1;
}

// Our read BIO for socket sessions: one large recv() fills the session's `in` buffer and OpenSSL (its
// read-ahead off) takes each record's header and body from there. OpenSSL's own read-ahead moves the
// unread rest of its buffer to the front at every record: with large reads that copied each byte ~4 times.
// The buffer is freed once drained (the socket said EAGAIN), as SSL_MODE_RELEASE_BUFFERS does its own.
#define IN_READ (128 * 1024)
static BIO_METHOD *in_method;

static int in_bio_fill(BIO *bio, session *s) {
  if (!s->in.data && !(s->in.data = malloc(IN_READ))) return 0;
  s->in.cap = IN_READ;
  ssize_t n;
  do n = recv(s->fd, s->in.data, IN_READ, 0);
  while (n < 0 && errno == EINTR);
  if (n > 0) {
    s->in.start = 0;
    s->in.end = (size_t)n;
    return 1;
  }
  free(s->in.data);
  s->in = (bytes){0};
  if (n == 0) BIO_set_flags(bio, BIO_FLAGS_IN_EOF);
  else if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(bio);
  return 0;
}

static int in_bio_read(BIO *bio, char *data, size_t length, size_t *read) {
  session *s = BIO_get_data(bio);
  BIO_clear_retry_flags(bio);
  if (bytes_size(&s->in) == 0 && !in_bio_fill(bio, s)) return 0;
  size_t n = bytes_size(&s->in) < length ? bytes_size(&s->in) : length;
  memcpy(data, s->in.data + s->in.start, n);
  s->in.start += n;
  *read = n;
  return 1;
}

static long in_bio_ctrl(BIO *bio, int cmd, long num, void *ptr) {
  (void)num, (void)ptr;
  if (cmd == BIO_CTRL_EOF) return BIO_test_flags(bio, BIO_FLAGS_IN_EOF) != 0;
  if (cmd == BIO_CTRL_PENDING) return (long)bytes_size(&((session *)BIO_get_data(bio))->in);
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static uv_timer_t *timer_new(void *data) {
  uv_timer_t *timer = malloc(sizeof *timer);
  if (!timer) abort();
  uv_timer_init(loop, timer);
  uv_unref((uv_handle_t *)timer);
  timer->data = data;
  return timer;
}

static uv_poll_t *poll_new(int fd, void *data) {
  uv_poll_t *poll = malloc(sizeof *poll);
  if (!poll) abort();
  if (uv_poll_init(loop, poll, fd) != 0) {
    free(poll);
    return NULL;
  }
  poll->data = data;
  return poll;
}

// ---- tunnels -----------------------------------------------------------------------------------------
static void session_pump(session *s);
static void session_fail(session *s, const char *message);
static void tunnel_check(tunnel *t);
ssize_t read_plain(nghttp2_session *h2, int32_t stream_id, uint8_t *buffer, size_t length, uint32_t *flags, nghttp2_data_source *source, void *user);

// What a DATA provider holds: the tunnel's id, never its pointer (see read_plain).
static void *provider_ref(const tunnel *t) { return (void *)(uintptr_t)(uint64_t)t->id; }

static tunnel *tunnel_new(int fd, int server) {
  tunnel *t = calloc(1, sizeof *t);
  if (!t) abort();
  t->fd = fd;
  t->server = server;
  t->id = id_new(K_TUNNEL, t);
  return t;
}

static void tunnel_attach(tunnel *t, session *s, int32_t stream_id) {
  t->session = s;
  t->stream_id = stream_id;
  t->h2_closed = 0;
  t->rst_code = 0;
  t->responded = 0;
  t->status = 0;
  t->peer_ended = 0; // a retry on another stream starts afresh (a refusal's END_STREAM is not the new stream's)
  t->reason[0] = t->forwarded[0] = '\0';
  t->prev = NULL;
  t->next = s->tunnels;
  if (s->tunnels) s->tunnels->prev = t;
  s->tunnels = t;
}

// STREAM_ALIVE: the stream may still exist in nghttp2 and must stop naming this tunnel.
static void tunnel_detach(tunnel *t, int stream_alive) {
  session *s = t->session;
  if (!s) return;
  if (t->prev) t->prev->next = t->next;
  else s->tunnels = t->next;
  if (t->next) t->next->prev = t->prev;
  t->next = t->prev = NULL;
  if (stream_alive && s->h2 && t->stream_id > 0 && !t->h2_closed) nghttp2_session_set_stream_user_data(s->h2, t->stream_id, NULL);
  t->session = NULL;
  if (!s->tunnels) s->idle_since = uv_now(loop);
}

static void tunnel_set_error(tunnel *t, const char *message) {
  if (!t->error[0]) snprintf(t->error, sizeof t->error, "%s", message);
}

// A request JS has not answered yet ended (the client reset it, its session died): JS hears it as
// EV_CLOSED, so a hub forgets a standby stream.
static void emit_unanswered(tunnel *t) {
  if (!t->server || !t->awaiting || t->closed_sent) return;
  t->awaiting = 0;
  t->closed_sent = 1;
  emit(EV_CLOSED, t->id, 0, (double)t->to_plain, "the stream ended before it was answered", NULL, NULL, NULL);
}

static void on_plain_poll(uv_poll_t *handle, int status, int events);

static void tunnel_update_poll(tunnel *t) {
  if (t->fd < 0 || t->dead) return;
  int mask = 0;
  if (t->dialing) mask = UV_WRITABLE;
  else if (t->preface || t->finishing) {
    // JS reads the handshake (or we drain what the client still sends after a refusal); replies go out
    if ((t->finishing || t->preface_left > 0) && !t->plain_eof) mask |= UV_READABLE;
    if (bytes_size(&t->pending) > 0) mask |= UV_WRITABLE;
  } else if (t->established) {
    if (t->deferred && !t->plain_eof && t->session && !t->h2_closed) mask |= UV_READABLE;
    if (bytes_size(&t->pending) > 0) mask |= UV_WRITABLE;
  }
  if (mask == t->poll_mask) return;
  if (!t->poll && !(t->poll = poll_new(t->fd, t))) return;
  t->poll_mask = mask;
  if (mask) uv_poll_start(t->poll, mask, on_plain_poll);
  else uv_poll_stop(t->poll);
}

static void carrier_release(tunnel *t);
static void splice_unlink(tunnel *t, int reset);
static void session_fail(session *s, const char *message);

// Give the stream credit back for COUNT bytes of the pending queue that left it (or were dropped): the
// bytes JS queued itself (handshake replies) never came from the stream and earn none.
// Returns how many of COUNT came from the stream.
static size_t credit_stream(tunnel *t, size_t count) {
  size_t local = count < t->local_pending ? count : t->local_pending;
  t->local_pending -= local;
  count -= local;
  session *s = t->session;
  if (!count || !s || s->dead) return count;
  if (t->stream_id > 0 && !t->h2_closed) nghttp2_session_consume(s->h2, t->stream_id, count);
  else nghttp2_session_consume_connection(s->h2, count);
  return count;
}

// RST (SO_LINGER 0) when the other side was reset, as ztunnel does; a FIN otherwise. A layered session
// ends; a spliced stream's peer hears of it.
static void tunnel_close_plain(tunnel *t, int reset) {
  if (t->kind == P_INNER) {
    if (t->inner) session_fail(t->inner, reset ? "the carrier stream was reset" : "the carrier stream ended");
    return;
  }
  if (t->kind == P_SPLICE) {
    splice_unlink(t, reset);
    return;
  }
  if (t->fd < 0) return;
  close_handle((uv_handle_t *)t->poll);
  t->poll = NULL;
  t->poll_mask = 0;
  if (reset) {
    struct linger abort_linger = {1, 0};
    setsockopt(t->fd, SOL_SOCKET, SO_LINGER, &abort_linger, sizeof abort_linger);
  }
  close(t->fd);
  t->fd = -1;
  // Bytes for a closed socket are never written: give their flow-control credit back.
  size_t dropped = bytes_size(&t->pending);
  credit_stream(t, dropped);
  bytes_consumed(&t->pending, dropped, 0);
}

static void tunnel_reset_stream(tunnel *t, uint32_t code) {
  session *s = t->session;
  if (!s || s->dead || t->h2_closed || t->stream_id <= 0) return;
  nghttp2_submit_rst_stream(s->h2, NGHTTP2_FLAG_NONE, t->stream_id, code);
}

static void stop_timer(uv_timer_t *timer) {
  if (timer) uv_timer_stop(timer);
}

static void on_linger(uv_timer_t *handle) {
  tunnel *t = handle->data;
  if (t->dead) return;
  session *s = t->session;
  tunnel_reset_stream(t, NGHTTP2_CANCEL);
  tunnel_close_plain(t, 0);
  if (s) session_pump(s);
  tunnel_check(t);
  settle();
}

static void start_linger(tunnel *t) {
  if (!t->timer) t->timer = timer_new(t);
  if (!uv_is_active((uv_handle_t *)t->timer)) uv_timer_start(t->timer, on_linger, LINGER_MS, 0);
}

static void carrier_check(tunnel *t);
static void splice_check(tunnel *t);

// Where the tunnel stands after anything happened to it: close what is finished, tell JS once both
// sides are gone. FIN ↔ END_STREAM both ways; a reset on one side resets the other.
static void tunnel_check(tunnel *t) {
  if (t->dead) return;
  if (t->kind == P_INNER) {
    carrier_check(t);
    return;
  }
  if (t->kind == P_SPLICE) {
    splice_check(t);
    return;
  }
  int stream_done = t->h2_closed || !t->session;
  if (!t->established) {
    if (t->released && stream_done && t->fd < 0) tunnel_kill(t);
    return;
  }
  if (stream_done && t->fd >= 0) {
    if (t->rst_code != 0 || t->error[0]) tunnel_close_plain(t, 1);
    else if (bytes_size(&t->pending) == 0) {
      if (!t->shut_wr) {
        shutdown(t->fd, SHUT_WR);
        t->shut_wr = 1;
      }
      if (t->plain_eof) tunnel_close_plain(t, 0);
      else start_linger(t); // the stream ended cleanly; give the plain peer a moment to finish
    }
  } else if (!stream_done && t->fd < 0) {
    if (t->rst_code != 0 || t->error[0]) tunnel_reset_stream(t, NGHTTP2_CANCEL);
    else start_linger(t); // our END_STREAM went out; the peer's should follow
  }
  if (stream_done && t->fd < 0) {
    stop_timer(t->timer);
    tunnel_detach(t, 1);
    if (!t->released && !t->closed_sent) {
      t->closed_sent = 1;
      emit(EV_CLOSED, t->id, (double)t->from_plain, (double)t->to_plain, t->error[0] ? t->error : NULL, NULL, NULL, NULL);
    }
    tunnel_kill(t);
  }
}

static void tunnel_fail_plain(tunnel *t, int err, const char *doing) {
  if (err != ECONNRESET && err != EPIPE) {
    char message[160];
    snprintf(message, sizeof message, "%s %s the plain side: %s", errno_name(err), doing, strerror(err));
    tunnel_set_error(t, message);
  }
  t->rst_code = t->rst_code ? t->rst_code : NGHTTP2_CANCEL;
  tunnel_reset_stream(t, NGHTTP2_CANCEL);
  tunnel_close_plain(t, 1);
}

// Write what the stream delivered to the plain socket; each written byte returns its window credit.
static void tunnel_flush_pending(tunnel *t) {
  while (bytes_size(&t->pending) > 0 && t->fd >= 0) {
    ssize_t written = send(t->fd, t->pending.data + t->pending.start, bytes_size(&t->pending), MSG_NOSIGNAL);
    if (written < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) tunnel_fail_plain(t, errno, "writing to");
      return;
    }
    bytes_consumed(&t->pending, (size_t)written, 256 * 1024);
    t->to_plain += credit_stream(t, (size_t)written);
  }
  if (t->finishing) return;
  if (bytes_size(&t->pending) == 0 && t->peer_ended && t->fd >= 0 && !t->shut_wr) {
    shutdown(t->fd, SHUT_WR);
    t->shut_wr = 1;
    if (t->plain_eof) tunnel_close_plain(t, 0);
  }
}

static void carrier_deliver(tunnel *t, const uint8_t *data, size_t length);
static void splice_deliver(tunnel *t, const uint8_t *data, size_t length);
static void carrier_established(tunnel *t);
static void splice_wake(tunnel *t);

static void tunnel_deliver(tunnel *t, const uint8_t *data, size_t length) {
  if (t->kind == P_INNER) {
    carrier_deliver(t, data, length);
    return;
  }
  if (t->kind == P_SPLICE) {
    splice_deliver(t, data, length);
    return;
  }
  session *s = t->session;
  size_t offset = 0;
  if (t->established && t->fd >= 0 && bytes_size(&t->pending) == 0) {
    while (offset < length) {
      ssize_t written = send(t->fd, data + offset, length - offset, MSG_NOSIGNAL);
      if (written < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) {
          nghttp2_session_consume(s->h2, t->stream_id, length - offset);
          tunnel_fail_plain(t, errno, "writing to");
          return;
        }
        break;
      }
      offset += (size_t)written;
    }
    if (offset) {
      t->to_plain += offset;
      nghttp2_session_consume(s->h2, t->stream_id, offset);
    }
  }
  if (offset == length) return;
  if (t->fd < 0 && t->established) {
    nghttp2_session_consume(s->h2, t->stream_id, length - offset);
    return;
  }
  // The plain side is slow (or not dialled yet): hold the rest; credit returns as it is written.
  if (bytes_append(&t->pending, data + offset, length - offset, 2 * (size_t)STREAM_WINDOW) < 0) {
    nghttp2_session_consume(s->h2, t->stream_id, length - offset);
    tunnel_set_error(t, "the peer sent more than its flow-control window");
    t->rst_code = NGHTTP2_FLOW_CONTROL_ERROR;
    tunnel_reset_stream(t, NGHTTP2_FLOW_CONTROL_ERROR);
    tunnel_close_plain(t, 1);
    return;
  }
  tunnel_update_poll(t);
}

#define MAX_EXTRA_HEADERS 8

// A response: :status, then up to MAX_EXTRA_HEADERS more (name, value) pairs.
static void submit_status_with(session *s, int32_t stream_id, const char *status, const nghttp2_nv *extra, size_t extra_count, nghttp2_data_provider *provider) {
  nghttp2_nv headers[1 + MAX_EXTRA_HEADERS];
  headers[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), NGHTTP2_NV_FLAG_NONE};
  if (extra_count > MAX_EXTRA_HEADERS) extra_count = MAX_EXTRA_HEADERS;
  for (size_t i = 0; i < extra_count; i++) headers[1 + i] = extra[i];
  nghttp2_submit_response(s->h2, stream_id, headers, 1 + extra_count, provider);
}

static void submit_status(session *s, int32_t stream_id, const char *status, nghttp2_data_provider *provider) {
  submit_status_with(s, stream_id, status, NULL, 0, provider);
}

static void dial_finished(tunnel *t, int err) {
  session *s = t->session;
  t->dialing = 0;
  stop_timer(t->timer);
  if (!err && (!s || s->dead || t->h2_closed)) err = ECANCELED;
  if (err) {
    tunnel_close_plain(t, 0);
    if (s && !s->dead && !t->h2_closed) {
      submit_status(s, t->stream_id, "503", NULL); // as ztunnel: the upstream is not reachable
      session_pump(s);
    }
    emit(EV_DIAL_RESULT, t->id, 0, 0, errno_name(err), strerror(err), NULL, NULL);
    t->released = 1;
    tunnel_check(t);
    return;
  }
  set_nodelay(t->fd);
  t->established = 1;
  emit(EV_DIAL_RESULT, t->id, 0, 0, "", NULL, NULL, NULL);
  // Only now 200: "the upstream is connected", as in ztunnel.
  nghttp2_data_provider provider = {.source = {.ptr = provider_ref(t)}, .read_callback = read_plain};
  submit_status(s, t->stream_id, "200", &provider);
  tunnel_flush_pending(t); // bytes the client sent before our 200
  session_pump(s);
  tunnel_update_poll(t);
  tunnel_check(t);
}

static void on_dial_timeout(uv_timer_t *handle) {
  tunnel *t = handle->data;
  if (!t->dead && t->dialing) dial_finished(t, ETIMEDOUT);
  settle();
}

static void finish_close(tunnel *t) {
  stop_timer(t->timer);
  tunnel_close_plain(t, 0);
  tunnel_check(t);
}

static void on_finish_linger(uv_timer_t *handle) {
  tunnel *t = handle->data;
  if (!t->dead) finish_close(t);
  settle();
}

// Before open(): the first bytes go to JS (a proxy handshake), JS's replies to the socket. After
// finish(): the last reply goes out, then FIN; what the client still sends is read and dropped (so the
// kernel does not answer it with a RST that could destroy the reply) until it closes or a deadline.
static void plain_side_io(tunnel *t, int status, int events) {
  if (status < 0) events |= UV_READABLE | UV_WRITABLE;
  if ((events & UV_WRITABLE) && bytes_size(&t->pending) > 0) tunnel_flush_pending(t);
  if (t->fd < 0) return;
  if (t->finishing && bytes_size(&t->pending) == 0 && !t->shut_wr) {
    shutdown(t->fd, SHUT_WR);
    t->shut_wr = 1;
    if (!t->timer) t->timer = timer_new(t);
    uv_timer_start(t->timer, on_finish_linger, FINISH_LINGER_MS, 0);
  }
  if (events & (UV_READABLE | UV_DISCONNECT)) {
    char chunk[PREFACE_CHUNK];
    size_t want = t->finishing ? sizeof chunk : (t->preface_left < sizeof chunk ? t->preface_left : sizeof chunk);
    for (int reads = 0; reads < 16 && want > 0 && t->fd >= 0 && !t->plain_eof; reads++) {
      ssize_t got = recv(t->fd, chunk, want, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && errno == EAGAIN) break;
      if (got <= 0) {
        t->plain_eof = 1;
        if (t->finishing) finish_close(t);
        else emit_data(t->id, got == 0 ? -1 : -2, NULL, 0); // the client left (FIN, or an error) during its handshake
        break;
      }
      if (t->finishing) continue;
      t->preface_left -= (size_t)got;
      emit_data(t->id, (double)got, chunk, (size_t)got);
      break; // one event per readiness: JS may answer (or open) before the next
    }
  }
  tunnel_update_poll(t);
}

static void on_plain_poll(uv_poll_t *handle, int status, int events) {
  tunnel *t = handle->data;
  if (t->dead || t->fd < 0) return;
  if (t->preface || t->finishing) {
    plain_side_io(t, status, events);
    settle();
    return;
  }
  if (t->dialing) {
    int err = 0;
    socklen_t length = sizeof err;
    if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &length) < 0) err = errno;
    if (!err && status < 0) err = -status;
    dial_finished(t, err);
    settle();
    return;
  }
  session *s = t->session;
  if (status < 0) events |= UV_READABLE | UV_WRITABLE;
  if ((events & UV_WRITABLE) && bytes_size(&t->pending) > 0) tunnel_flush_pending(t);
  if ((events & (UV_READABLE | UV_DISCONNECT)) && t->deferred && s && !s->dead && !t->h2_closed) {
    t->deferred = 0;
    nghttp2_session_resume_data(s->h2, t->stream_id);
  }
  if (s) session_pump(s);
  tunnel_update_poll(t);
  tunnel_check(t);
  settle();
}

static ssize_t read_carrier(tunnel *t, uint8_t *buffer, size_t length, uint32_t *flags);
static ssize_t read_splice(tunnel *t, uint8_t *buffer, size_t length, uint32_t *flags);

// Take up to LENGTH bytes from the front of QUEUE into BUFFER.
static size_t take_bytes(bytes *queue, uint8_t *buffer, size_t length) {
  size_t n = bytes_size(queue);
  if (n > length) n = length;
  memcpy(buffer, queue->data + queue->start, n);
  bytes_consumed(queue, n, 1024 * 1024);
  return n;
}

// nghttp2 asks for the next DATA payload: read it straight from the plain socket into the frame.
ssize_t read_plain(nghttp2_session *h2, int32_t stream_id, uint8_t *buffer, size_t length, uint32_t *flags, nghttp2_data_source *source, void *user) {
  (void)user;
  // The provider names its tunnel by id, and the tunnel must still be on this very stream: a tunnel that
  // was freed, cancelled or moved to another stream gives nothing (its stream's RST is on its way).
  tunnel *t = id_get((double)(uintptr_t)source->ptr, K_TUNNEL);
  if (!t || t->dead || !t->session || t->session->h2 != h2 || t->stream_id != stream_id) return NGHTTP2_ERR_DEFERRED;
  if (t->kind == P_INNER) return read_carrier(t, buffer, length, flags);
  if (t->kind == P_SPLICE) return read_splice(t, buffer, length, flags);
  if (!t->established) {
    t->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  if (bytes_size(&t->early) > 0) {
    // What the proxy's client sent with its handshake (or its rewritten request head) goes first.
    size_t n = take_bytes(&t->early, buffer, length);
    t->from_plain += n;
    return (ssize_t)n;
  }
  if (t->fd < 0 || t->plain_eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  for (;;) {
    ssize_t got = recv(t->fd, buffer, length, 0);
    if (got > 0) {
      t->from_plain += (uint64_t)got;
      return got;
    }
    if (got == 0) {
      t->plain_eof = 1;
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      t->deferred = 1;
      tunnel_update_poll(t); // wake us when the application sends more
      return NGHTTP2_ERR_DEFERRED;
    }
    int err = errno;
    if (err != ECONNRESET && err != EPIPE) {
      char message[160];
      snprintf(message, sizeof message, "%s reading from the plain side: %s", errno_name(err), strerror(err));
      tunnel_set_error(t, message);
    }
    t->rst_code = NGHTTP2_CANCEL;
    tunnel_close_plain(t, 1);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; // nghttp2 resets the stream
  }
}

// ---- sessions: TLS + HTTP/2 ----------------------------------------------------------------------------
static uint8_t read_buffer[RBUF_CAP];
// A layered session decrypts while its carrier's session is still reading from read_buffer.
static uint8_t layered_read_buffer[RBUF_CAP];
static uint8_t tx_buffer[TX_CAP];
static size_t tx_length;
static nghttp2_session_callbacks *callbacks;
static nghttp2_option *h2_options;

static int tls_write(session *s, const uint8_t *data, size_t length) {
  while (length > 0) {
    int n = SSL_write(s->ssl, data, length > (1 << 30) ? (1 << 30) : (int)length);
    if (n <= 0) return -1; // our BIO never blocks: any failure is fatal
    data += n;
    length -= (size_t)n;
  }
  return 0;
}

// Small frames (headers, WINDOW_UPDATE, frame headers) are gathered so TLS records come out full.
static int tx_commit(session *s) {
  int result = tx_length ? tls_write(s, tx_buffer, tx_length) : 0;
  tx_length = 0;
  return result;
}

// A frame of a TLS record or more (DATA) goes to SSL_write straight from nghttp2's buffer: one copy fewer.
static int tx_queue(session *s, const uint8_t *data, size_t length) {
  if (length >= TLS_RECORD) {
    if (tx_commit(s) < 0) return -1;
    return tls_write(s, data, length);
  }
  if (tx_length + length > TX_CAP && tx_commit(s) < 0) return -1;
  memcpy(tx_buffer + tx_length, data, length);
  tx_length += length;
  return 0;
}

static void on_session_poll(uv_poll_t *handle, int status, int events);

static void carrier_wake(tunnel *t);

static void session_update_poll(session *s) {
  if (s->dead || !s->poll) return;
  int mask = UV_READABLE;
  if (s->state == S_CONNECTING || bytes_size(&s->out) > 0) mask |= UV_WRITABLE;
  if (mask != s->poll_mask) {
    s->poll_mask = mask;
    uv_poll_start(s->poll, mask, on_session_poll);
  }
}

static void session_flush(session *s) {
  if (s->layered) {
    // The carrier's DATA provider takes the bytes from `out`.
    if (s->carrier && bytes_size(&s->out) > 0) carrier_wake(s->carrier);
    return;
  }
  while (bytes_size(&s->out) > 0) {
    ssize_t written = send(s->fd, s->out.data + s->out.start, bytes_size(&s->out), MSG_NOSIGNAL);
    if (written < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      char message[160];
      snprintf(message, sizeof message, "%s: %s", errno_name(errno), strerror(errno));
      session_fail(s, message);
      return;
    }
    bytes_consumed(&s->out, (size_t)written, 1024 * 1024);
  }
}

// Produce frames, encrypt, send; again while the socket takes everything and nghttp2 has more. It stops
// when nghttp2 has nothing to send (or waits on a window: a WINDOW_UPDATE read later pumps again) or
// when the socket is full (the writable poll pumps again). Never with both idle and frames pending.
static void session_pump(session *s) {
  if (s->dead || s->state != S_OPEN) return;
  for (;;) {
    int exhausted = 0;
    while (bytes_size(&s->out) < OUT_HIGH) {
      const uint8_t *data;
      ssize_t n = nghttp2_session_mem_send(s->h2, &data);
      if (n < 0) {
        tx_length = 0;
        session_fail(s, nghttp2_strerror((int)n));
        return;
      }
      if (n == 0) {
        exhausted = 1;
        break;
      }
      if (tx_queue(s, data, (size_t)n) < 0) {
        tx_length = 0;
        session_fail(s, "TLS write failed");
        return;
      }
    }
    if (tx_commit(s) < 0) {
      session_fail(s, "TLS write failed");
      return;
    }
    session_flush(s);
    if (s->dead) return;
    if (exhausted || bytes_size(&s->out) > 0) break;
  }
  if (!nghttp2_session_want_read(s->h2) && !nghttp2_session_want_write(s->h2) && bytes_size(&s->out) == 0) {
    session_fail(s, s->goaway ? "the peer sent GOAWAY" : "closed");
    return;
  }
  session_update_poll(s);
}

static void carrier_release(tunnel *t);
static void emit_unanswered(tunnel *t);

// The session ends: established tunnels lose their stream (reset), pending ones hear why, JS is told.
static void session_fail(session *s, const char *message) {
  if (s->dead) return;
  s->dead = 1;
  if (s->poll) uv_poll_stop(s->poll);
  stop_timer(s->timer);
  char text[200];
  snprintf(text, sizeof text, "the HBONE connection closed: %s", message);
  while (s->tunnels) {
    tunnel *t = s->tunnels;
    tunnel_detach(t, 0);
    t->h2_closed = 1;
    if (t->kind != P_FD) {
      // A carrier or a splice: its other side hears of it (and ends); JS learns from EV_RESPONSE / EV_CLOSED.
      if (!(t->plain_eof && t->peer_ended)) {
        t->rst_code = NGHTTP2_CANCEL;
        tunnel_set_error(t, text);
      }
      if (!t->established && !t->server && !t->responded) {
        t->responded = 1;
        t->stream_id = 0;
        emit(EV_RESPONSE, t->id, 0, 0, message, NULL, NULL, NULL);
      }
      emit_unanswered(t);
      tunnel_check(t);
    } else if (t->established) {
      if (!(t->plain_eof && t->peer_ended)) {
        t->rst_code = NGHTTP2_CANCEL;
        tunnel_set_error(t, text);
      }
      tunnel_check(t);
    } else if (!t->server) {
      t->stream_id = 0;
      if (!t->responded) {
        t->responded = 1;
        emit(EV_RESPONSE, t->id, 0, 0, message, NULL, NULL, NULL);
      }
    } else {
      if (t->dialing) dial_finished(t, ECANCELED);
      emit_unanswered(t);
      t->released = 1;
      tunnel_close_plain(t, 0);
      tunnel_check(t);
    }
  }
  if (s->state == S_OPEN) emit(EV_SESSION_CLOSED, s->id, 0, 0, message, NULL, NULL, NULL);
  else if (!s->server) emit(EV_SESSION_FAILED, s->id, 0, 0, message, NULL, NULL, NULL);
  else if (!(s->layered && s->state == S_CONNECTING)) emit(EV_TLS_ERROR, s->listener_id, 0, 0, s->remote, message, NULL, NULL);
  // (a standby session whose carrier was never answered: JS hears it from the carrier's EV_RESPONSE)
  s->state = S_CLOSED;
  if (s->carrier) carrier_release(s->carrier);
  bury((void ***)&dead_sessions, &dead_session_count, &dead_session_cap, s);
}

static void on_keepalive(uv_timer_t *handle);

// A PING (keepalive and round-trip time); its answer must come within the keepalive timeout.
static void send_ping(session *s) {
  s->ping_outstanding = 1;
  s->ping_sent = uv_hrtime();
  nghttp2_submit_ping(s->h2, NGHTTP2_FLAG_NONE, NULL);
  uv_timer_start(s->timer, on_keepalive, (uint64_t)s->keepalive_timeout_ms, 0);
}

static void on_keepalive(uv_timer_t *handle) {
  session *s = handle->data;
  if (s->dead) return;
  if (s->state != S_OPEN) {
    session_fail(s, s->server ? "TLS handshake timed out" : "ETIMEDOUT: timed out");
  } else if (s->ping_outstanding) {
    char message[80];
    snprintf(message, sizeof message, "no PING answer within %d ms", s->keepalive_timeout_ms);
    session_fail(s, message);
  } else if (s->server && s->limits.idle_session_ms > 0 && !s->tunnels && !s->goaway && uv_now(loop) - s->idle_since >= (uint64_t)s->limits.idle_session_ms) {
    // Idle too long: GOAWAY; with no stream open the session ends once it is sent.
    s->goaway = 1;
    nghttp2_submit_goaway(s->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->h2), NGHTTP2_NO_ERROR, NULL, 0);
    session_pump(s);
  } else {
    send_ping(s);
    session_pump(s);
  }
  settle();
}

static void arm_keepalive(session *s) {
  if (s->keepalive_ms > 0) uv_timer_start(s->timer, on_keepalive, (uint64_t)s->keepalive_ms, 0);
}

static void peer_identity(SSL *ssl, char *spiffe, size_t spiffe_size, char *serial, size_t serial_size) {
  spiffe[0] = serial[0] = '\0';
  X509 *cert = SSL_get1_peer_certificate(ssl);
  if (!cert) return;
  GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
    const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_URI) continue;
    const unsigned char *uri = ASN1_STRING_get0_data(name->d.uniformResourceIdentifier);
    int length = ASN1_STRING_length(name->d.uniformResourceIdentifier);
    if (length > 9 && length < (int)spiffe_size && strncmp((const char *)uri, "spiffe://", 9) == 0 && !memchr(uri, 0, (size_t)length)) {
      memcpy(spiffe, uri, (size_t)length);
      spiffe[length] = '\0';
      break;
    }
  }
  GENERAL_NAMES_free(names);
  BIGNUM *number = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), NULL);
  char *hex = number ? BN_bn2hex(number) : NULL;
  if (hex) snprintf(serial, serial_size, "%s", hex);
  OPENSSL_free(hex);
  BN_free(number);
  X509_free(cert);
}

static int session_start_h2(session *s) {
  int rv = s->server ? nghttp2_session_server_new2(&s->h2, callbacks, s, h2_options) : nghttp2_session_client_new2(&s->h2, callbacks, s, h2_options);
  if (rv != 0) return rv;
  nghttp2_settings_entry settings[5] = {
    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, MAX_FRAME_SIZE},
    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)s->limits.max_streams},
    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)s->limits.max_header_bytes},
  };
  rv = nghttp2_submit_settings(s->h2, NGHTTP2_FLAG_NONE, settings, s->server ? 5 : 3);
  if (rv == 0) rv = nghttp2_session_set_local_window_size(s->h2, NGHTTP2_FLAG_NONE, 0, CONNECTION_WINDOW);
  return rv;
}

static void session_read(session *s);

static void session_handshake(session *s) {
  ERR_clear_error();
  int rv = SSL_do_handshake(s->ssl);
  if (rv == 1) {
    const unsigned char *alpn = NULL;
    unsigned int alpn_length = 0;
    SSL_get0_alpn_selected(s->ssl, &alpn, &alpn_length);
    if (alpn_length != 2 || memcmp(alpn, "h2", 2) != 0) {
      session_flush(s);
      session_fail(s, "the peer did not negotiate ALPN h2");
      return;
    }
    if (session_start_h2(s) != 0) {
      session_fail(s, "cannot start the HTTP/2 session");
      return;
    }
    s->state = S_OPEN;
    s->idle_since = s->reset_refilled_at = uv_now(loop);
    s->reset_tokens = s->limits.reset_burst;
    char spiffe[512], serial[128];
    peer_identity(s->ssl, spiffe, sizeof spiffe, serial, sizeof serial);
    emit(EV_SESSION_READY, s->id, s->listener_id, 0, spiffe[0] ? spiffe : NULL, serial[0] ? serial : NULL, s->remote, NULL);
    stop_timer(s->timer);
    if (s->keepalive_ms > 0) send_ping(s); // the first round-trip time at once
    // What came with the peer's last handshake flight (a client's preface) waits in our read BIO, where
    // poll cannot see it: read it now rather than when the peer sends again.
    if (bytes_size(&s->in) > 0) session_read(s);
    session_pump(s);
    return;
  }
  int error = SSL_get_error(s->ssl, rv);
  session_flush(s); // handshake records (and alerts) go out
  if (s->dead) return;
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
    session_update_poll(s);
    return;
  }
  char message[200];
  if (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) snprintf(message, sizeof message, "the peer closed the connection during the TLS handshake");
  else {
    long verify = SSL_get_verify_result(s->ssl);
    if (verify != X509_V_OK) {
      snprintf(message, sizeof message, "certificate verify failed: %s", X509_verify_cert_error_string(verify));
      ERR_clear_error();
    } else tls_error_text("", message, sizeof message);
  }
  session_fail(s, message);
}

// Decrypt as many records as are there (up to the buffer) before handing them to nghttp2 in one go: a
// DATA frame spanning many 16 KiB records then reaches the plain socket in one large write. Reads go on
// until OpenSSL wants more from the socket: records it already holds (read-ahead) are invisible to
// poll, so stopping early could leave them there. The peer's flow-control window bounds the loop.
static void session_read(session *s) {
  while (!s->dead) {
    size_t filled = 0;
    int error = SSL_ERROR_NONE, n = 0;
    uint8_t *buffer = s->layered ? layered_read_buffer : read_buffer;
    while (filled < RBUF_CAP) {
      ERR_clear_error();
      n = SSL_read(s->ssl, buffer + filled, (int)(RBUF_CAP - filled));
      if (n <= 0) {
        error = SSL_get_error(s->ssl, n);
        break;
      }
      filled += (size_t)n;
    }
    if (filled > 0) {
      ssize_t used = nghttp2_session_mem_recv(s->h2, buffer, filled);
      if (used < 0) {
        // nghttp2 queued a GOAWAY for protocol errors (or a callback did, for a flood): send it, then end.
        session_pump(s);
        session_fail(s, s->ended_because ? s->ended_because : nghttp2_strerror((int)used));
        return;
      }
    }
    if (error == SSL_ERROR_NONE) continue; // the buffer filled up: more may be waiting
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return; // our BIO never blocks writes
    if (s->dead) return;
    char message[200];
    if (error == SSL_ERROR_ZERO_RETURN) snprintf(message, sizeof message, "the peer closed the connection");
    else if (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) snprintf(message, sizeof message, n == 0 ? "the peer closed the connection" : "%s", n == 0 ? "" : strerror(errno));
    else tls_error_text("TLS", message, sizeof message);
    session_fail(s, message);
    return;
  }
}

static void on_session_poll(uv_poll_t *handle, int status, int events) {
  session *s = handle->data;
  if (s->dead) return;
  if (s->state == S_CONNECTING) {
    int err = 0;
    socklen_t length = sizeof err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &length) < 0) err = errno;
    if (!err && status < 0) err = -status;
    if (err) {
      char message[160];
      snprintf(message, sizeof message, "%s: %s", errno_name(err), strerror(err));
      session_fail(s, message);
      settle();
      return;
    }
    s->state = S_HANDSHAKE;
    session_handshake(s);
    settle();
    return;
  }
  if (s->state == S_HANDSHAKE) {
    session_handshake(s);
    settle();
    return;
  }
  if (status < 0) events |= UV_READABLE;
  if (events & UV_WRITABLE) session_flush(s);
  if (events & (UV_READABLE | UV_DISCONNECT)) session_read(s);
  session_pump(s);
  settle();
}

// FD >= 0: a session over that socket; FD < 0: a layered one (its carrier is attached by the caller).
static session *session_new(int fd, int server, SSL_CTX *ctx, const char *remote) {
  session *s = calloc(1, sizeof *s);
  if (!s) abort();
  s->fd = fd;
  s->server = server;
  s->rtt_us = -1;
  s->limits = DEFAULT_LIMITS;
  s->id = id_new(K_SESSION, s);
  snprintf(s->remote, sizeof s->remote, "%s", remote);
  s->timer = timer_new(s);
  s->ssl = SSL_new(ctx);
  if (!s->ssl) abort();
  BIO *in;
  if (fd >= 0) {
    s->poll = poll_new(fd, s);
    if (!s->poll) abort();
    in = BIO_new(in_method);
    BIO_set_data(in, s);
  } else {
    s->layered = 1;
    in = s->rbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in, -1); // empty means "more later", not EOF
  }
  BIO *out = BIO_new(out_method);
  BIO_set_data(out, &s->out);
  SSL_set_bio(s->ssl, in, out);
  if (server) SSL_set_accept_state(s->ssl);
  else SSL_set_connect_state(s->ssl);
  if (fd >= 0 || !server) uv_timer_start(s->timer, on_keepalive, HANDSHAKE_TIMEOUT_MS, 0);
  return s;
}

// ---- nghttp2 callbacks -----------------------------------------------------------------------------------
static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *user) {
  session *s = user;
  if (!s->server || frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  tunnel *t = tunnel_new(-1, 1);
  tunnel_attach(t, s, frame->hd.stream_id);
  nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id, t);
  return 0;
}

static void copy_header(char *out, size_t size, const uint8_t *value, size_t length) {
  if (length >= size) length = size - 1;
  memcpy(out, value, length);
  out[length] = '\0';
  for (size_t i = 0; i < length; i++) if (out[i] == '\0') out[i] = '?';
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name, size_t name_length, const uint8_t *value, size_t value_length, uint8_t flags, void *user) {
  (void)flags;
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  tunnel *t = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
  if (!t) return 0;
  if (t->server) {
    const session *s = user;
    t->header_bytes += (uint32_t)(name_length + value_length + 32);
    // Beyond the bounds the stream is reset (RST_STREAM) and never becomes a request.
    if (t->header_bytes > (uint32_t)s->limits.max_header_bytes || ++t->header_pairs > (uint32_t)s->limits.max_header_pairs) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (name_length == 7 && memcmp(name, ":method", 7) == 0) copy_header(t->method, sizeof t->method, value, value_length);
    else if (name_length == 10 && memcmp(name, ":authority", 10) == 0) copy_header(t->authority, sizeof t->authority, value, value_length);
    else if (name_length == 9 && memcmp(name, "forwarded", 9) == 0 && value_length <= MAX_HEADER_VALUE) copy_header(t->forwarded, sizeof t->forwarded, value, value_length);
    else if (name_length == 9 && memcmp(name, "ztctl-hub", 9) == 0) copy_header(t->hub, sizeof t->hub, value, value_length);
  } else if (name_length == 7 && memcmp(name, ":status", 7) == 0 && value_length == 3) {
    t->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
  } else if (name_length == 12 && memcmp(name, "ztctl-reason", 12) == 0) {
    copy_header(t->reason, sizeof t->reason, value, value_length);
  } else if (name_length == 9 && memcmp(name, "forwarded", 9) == 0 && value_length <= MAX_HEADER_VALUE) {
    copy_header(t->forwarded, sizeof t->forwarded, value, value_length);
  }
  return 0;
}

// END_STREAM arrived: the plain side gets its FIN once what came is through; a carrier's inner session
// has seen its last byte; a splice's peer sends END_STREAM once it took everything.
static void tunnel_peer_ended(tunnel *t) {
  if (t->kind == P_INNER) carrier_check(t);
  else if (t->kind == P_SPLICE) {
    if (t->peer) splice_wake(t->peer);
  } else if (t->established) tunnel_flush_pending(t);
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *user) {
  session *s = user;
  switch (frame->hd.type) {
  case NGHTTP2_HEADERS: {
    tunnel *t = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!t) return 0;
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) t->peer_ended = 1;
    if (t->server) {
      if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        t->awaiting = 1;
        emit(EV_REQUEST, t->id, s->id, 0, t->method, t->authority, t->forwarded[0] ? t->forwarded : NULL, t->hub[0] ? t->hub : NULL);
      }
      if (t->peer_ended) tunnel_peer_ended(t);
      return 0;
    }
    if (frame->headers.cat != NGHTTP2_HCAT_RESPONSE || t->responded) return 0;
    if (t->status >= 100 && t->status < 200) return 0; // interim response
    t->responded = 1;
    if (t->status == 200) {
      t->established = 1;
      t->deferred = 0;
      nghttp2_session_resume_data(h2, t->stream_id);
      emit(EV_RESPONSE, t->id, 200, 0, NULL, t->forwarded[0] ? t->forwarded : NULL, NULL, NULL);
      if (t->kind == P_INNER) carrier_established(t);
      else if (bytes_size(&t->reply) > 0) {
        // The proxy's success reply reaches the client before any byte of the stream.
        if (bytes_append(&t->pending, t->reply.data + t->reply.start, bytes_size(&t->reply), SIZE_MAX) == 0) t->local_pending += bytes_size(&t->reply);
        bytes_consumed(&t->reply, bytes_size(&t->reply), 0);
        tunnel_flush_pending(t);
        tunnel_update_poll(t);
      }
      if (t->peer_ended) tunnel_peer_ended(t);
    } else {
      // Refused: the stream is done for us; the plain socket waits for JS (another endpoint, or close).
      int status_code = t->status;
      tunnel_reset_stream(t, NGHTTP2_CANCEL);
      tunnel_detach(t, 1);
      t->stream_id = 0;
      emit(EV_RESPONSE, t->id, status_code, 0, t->reason[0] ? t->reason : NULL, NULL, NULL, NULL);
      if (t->kind == P_INNER) {
        char message[260];
        snprintf(message, sizeof message, "the hub answered %d%s%s", status_code, t->reason[0] ? ": " : "", t->reason);
        if (t->inner) session_fail(t->inner, message);
        tunnel_check(t);
      }
    }
    return 0;
  }
  case NGHTTP2_DATA: {
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
    tunnel *t = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!t) return 0;
    t->peer_ended = 1;
    tunnel_peer_ended(t);
    return 0;
  }
  case NGHTTP2_PING:
    if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && s->ping_outstanding) {
      s->ping_outstanding = 0;
      s->rtt_us = (double)(uv_hrtime() - s->ping_sent) / 1000.0;
      arm_keepalive(s);
    }
    return 0;
  case NGHTTP2_RST_STREAM:
    if (s->server) {
      uint64_t now = uv_now(loop);
      s->reset_tokens += (double)(now - s->reset_refilled_at) / 1000.0 * s->limits.reset_rate;
      if (s->reset_tokens > s->limits.reset_burst) s->reset_tokens = s->limits.reset_burst;
      s->reset_refilled_at = now;
      if (--s->reset_tokens < 0) {
        s->ended_because = "the peer reset too many streams (rapid reset)";
        nghttp2_submit_goaway(h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h2), NGHTTP2_ENHANCE_YOUR_CALM, NULL, 0);
        return NGHTTP2_ERR_CALLBACK_FAILURE; // mem_recv stops here; session_read sends the GOAWAY and ends the session
      }
    }
    return 0;
  case NGHTTP2_GOAWAY:
    if (!s->goaway) {
      s->goaway = 1;
      emit(EV_GOAWAY, s->id, 0, 0, NULL, NULL, NULL, NULL);
    }
    return 0;
  default:
    return 0;
  }
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t length, void *user) {
  (void)flags, (void)user;
  tunnel *t = nghttp2_session_get_stream_user_data(h2, stream_id);
  if (!t || t->dead || t->released || (!t->established && !t->server)) {
    nghttp2_session_consume(h2, stream_id, length);
    return 0;
  }
  tunnel_deliver(t, data, length);
  return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code, void *user) {
  (void)user;
  tunnel *t = nghttp2_session_get_stream_user_data(h2, stream_id);
  if (!t) return 0;
  tunnel_detach(t, 0);
  t->h2_closed = 1;
  if (error_code) t->rst_code = error_code;
  if (!t->server && !t->established && !t->responded) {
    char message[80];
    snprintf(message, sizeof message, "the stream was reset (code %u) before a response", error_code);
    t->responded = 1;
    t->stream_id = 0;
    t->h2_closed = 0;
    emit(EV_RESPONSE, t->id, 0, 0, message, NULL, NULL, NULL);
    if (t->kind == P_INNER) {
      if (t->inner) session_fail(t->inner, message);
      tunnel_check(t);
    }
    return 0;
  }
  if (t->server && !t->established) {
    if (t->dialing) dial_finished(t, ECANCELED);
    emit_unanswered(t);
    t->released = 1;
    tunnel_close_plain(t, 0);
  }
  if (error_code && !t->error[0] && t->kind != P_FD) {
    char message[80];
    snprintf(message, sizeof message, "the stream was reset (code %u)", error_code);
    tunnel_set_error(t, message);
  }
  tunnel_check(t);
  return 0;
}

// DATA frames as large as the peer and the windows allow, up to MAX_DATA_FRAME: fewer frames, fewer reads.
static ssize_t data_length(nghttp2_session *h2, uint8_t type, int32_t stream_id, int32_t session_window, int32_t stream_window, uint32_t peer_max_frame, void *user) {
  (void)h2, (void)type, (void)stream_id, (void)user;
  ssize_t length = MAX_DATA_FRAME;
  if (session_window < length) length = session_window;
  if (stream_window < length) length = stream_window;
  if ((ssize_t)peer_max_frame < length) length = (ssize_t)peer_max_frame;
  return length > 0 ? length : 1;
}

// ---- layered sessions: a TLS + HTTP/2 session whose transport is a CONNECT stream (the inner HBONE of a
// hub relay). The carrier tunnel's DATA is the inner session's ciphertext both ways: what arrives is
// written into the inner session's read BIO and decrypted at once (so only a partial record waits; the
// inner session's own windows bound the rest), what the inner session produces waits in its `out` queue
// until the carrier's DATA provider takes it. Once the inner session ends, its last bytes are moved to
// the carrier's pending queue, then END_STREAM follows.
static void session_handshake(session *s);
static void session_read(session *s);

static void carrier_wake(tunnel *t) {
  session *outer = t->session;
  if (!outer || outer->dead || t->h2_closed || t->stream_id <= 0 || !t->established) return;
  if (t->deferred) {
    t->deferred = 0;
    nghttp2_session_resume_data(outer->h2, t->stream_id);
  }
  pump_later(outer);
}

static void inner_process(session *inner) {
  if (inner->state == S_HANDSHAKE) session_handshake(inner);
  if (!inner->dead && inner->state == S_OPEN) session_read(inner);
  pump_later(inner);
}

static void carrier_deliver(tunnel *t, const uint8_t *data, size_t length) {
  session *outer = t->session;
  // Credit returns at once: the inner session decrypts everything now, its own windows bound the rest.
  nghttp2_session_consume(outer->h2, t->stream_id, length);
  t->to_plain += length;
  session *inner = t->inner;
  if (!inner || inner->dead || !t->established) return;
  if (BIO_write(inner->rbio, data, (int)length) != (int)length || BIO_ctrl_pending(inner->rbio) > LAYERED_MAX_INPUT) {
    session_fail(inner, "the carrier stream brought more than one TLS record could hold");
    return;
  }
  inner_process(inner);
}

static ssize_t read_carrier(tunnel *t, uint8_t *buffer, size_t length, uint32_t *flags) {
  if (!t->established) {
    t->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  bytes *queue = t->inner ? &t->inner->out : &t->pending;
  if (bytes_size(queue) == 0) {
    if (!t->inner) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    t->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = take_bytes(queue, buffer, length);
  t->from_plain += n;
  if (t->inner && bytes_size(queue) < OUT_HIGH) pump_later(t->inner); // room again: it may produce more
  return (ssize_t)n;
}

// The inner session ended (any reason): its unsent bytes become the carrier's last, then END_STREAM.
static void carrier_release(tunnel *t) {
  session *inner = t->inner;
  if (!inner) return;
  t->inner = NULL;
  inner->carrier = NULL;
  size_t left = bytes_size(&inner->out);
  if (left && bytes_append(&t->pending, inner->out.data + inner->out.start, left, SIZE_MAX) < 0) tunnel_set_error(t, "out of memory");
  bytes_consumed(&inner->out, left, 0);
  t->plain_eof = 1;
  carrier_wake(t);
  tunnel_check(t);
}

static void carrier_check(tunnel *t) {
  if (t->dead) return;
  int stream_done = t->h2_closed || !t->session || t->stream_id <= 0;
  // No more ciphertext will come: the inner session is over (its GOAWAY and alerts still go out).
  if (t->inner && (stream_done || t->peer_ended)) {
    session_fail(t->inner, t->rst_code ? "the carrier stream was reset" : "the carrier stream ended");
    if (t->dead) return; // carrier_release checked it again
  }
  if (!stream_done && !t->inner && bytes_size(&t->pending) == 0) start_linger(t); // our END_STREAM is out; the peer's should follow
  if (stream_done && !t->inner) {
    stop_timer(t->timer);
    tunnel_detach(t, 1);
    if (t->established && !t->closed_sent) {
      t->closed_sent = 1;
      emit(EV_CLOSED, t->id, (double)t->from_plain, (double)t->to_plain, t->error[0] ? t->error : NULL, NULL, NULL, NULL);
    }
    tunnel_kill(t);
  }
}

// `for="1.2.3.4:5"` (RFC 7239) → 1.2.3.4:5 in OUT, or an empty string.
static void forwarded_for(const char *value, char *out, size_t size) {
  out[0] = '\0';
  const char *start = strstr(value, "for=");
  if (!start) return;
  start += 4;
  if (*start == '"') start++;
  size_t n = strcspn(start, "\";,");
  if (n >= size) return;
  memcpy(out, start, n);
  out[n] = '\0';
}

// The carrier was answered 200: the inner session starts its handshake over it.
static void carrier_established(tunnel *t) {
  session *inner = t->inner;
  if (!inner || inner->dead) return;
  forwarded_for(t->forwarded, inner->remote, sizeof inner->remote);
  inner->state = S_HANDSHAKE;
  if (inner->server) uv_timer_start(inner->timer, on_keepalive, (uint64_t)inner->limits.handshake_timeout_ms, 0); // a client's deadline runs since it asked
  inner_process(inner);
  carrier_wake(t);
}

// ---- splices: two server streams joined (a hub relay). What arrives on one waits in its pending queue
// until the other's DATA provider takes it; only then does the sender get its credit back, so a slow
// side backs the other up. END_STREAM follows END_STREAM; a reset resets the other side.
static void splice_wake(tunnel *t) {
  session *s = t->session;
  if (!s || s->dead || t->h2_closed || !t->established) return;
  if (t->deferred) {
    t->deferred = 0;
    nghttp2_session_resume_data(s->h2, t->stream_id);
  }
  pump_later(s);
}

static void splice_deliver(tunnel *t, const uint8_t *data, size_t length) {
  session *s = t->session;
  t->to_plain += length;
  tunnel *peer = t->peer;
  if (!peer || peer->dead) {
    nghttp2_session_consume(s->h2, t->stream_id, length);
    return;
  }
  if (bytes_append(&t->pending, data, length, 2 * (size_t)STREAM_WINDOW) < 0) {
    nghttp2_session_consume(s->h2, t->stream_id, length);
    tunnel_set_error(t, "the peer sent more than its flow-control window");
    t->rst_code = NGHTTP2_FLOW_CONTROL_ERROR;
    tunnel_reset_stream(t, NGHTTP2_FLOW_CONTROL_ERROR);
    splice_unlink(t, 1);
    return;
  }
  splice_wake(peer);
}

static ssize_t read_splice(tunnel *t, uint8_t *buffer, size_t length, uint32_t *flags) {
  tunnel *source = t->peer;
  if (source && bytes_size(&source->pending) > 0) {
    size_t n = take_bytes(&source->pending, buffer, length);
    t->from_plain += n;
    credit_stream(source, n);
    pump_later(source->session); // its WINDOW_UPDATE
    if (bytes_size(&source->pending) == 0 && source->h2_closed) splice_check(source);
    return (ssize_t)n;
  }
  if (!source || source->peer_ended || t->plain_eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  t->deferred = 1;
  return NGHTTP2_ERR_DEFERRED;
}

// Part T from its peer; RESET: the peer is reset too, else it ends once what T sent is through.
static void splice_unlink(tunnel *t, int reset) {
  tunnel *peer = t->peer;
  if (!peer) return;
  t->peer = NULL;
  peer->peer = NULL;
  peer->plain_eof = 1;
  if (reset) {
    if (!peer->rst_code) peer->rst_code = NGHTTP2_CANCEL;
    tunnel_set_error(peer, t->error[0] ? t->error : "the other side of the relay was reset");
    tunnel_reset_stream(peer, NGHTTP2_CANCEL);
    pump_later(peer->session);
  } else {
    splice_wake(peer);
  }
  splice_check(peer);
}

static void splice_check(tunnel *t) {
  if (t->dead) return;
  int stream_done = t->h2_closed || !t->session;
  if (!stream_done) return;
  int clean = !t->rst_code && !t->error[0];
  // A stream that ended cleanly stays until its peer took what it brought.
  if (t->peer && (!clean || bytes_size(&t->pending) == 0)) splice_unlink(t, !clean);
  if (t->peer) return;
  tunnel_detach(t, 1);
  if (t->established && !t->closed_sent) {
    t->closed_sent = 1;
    emit(EV_CLOSED, t->id, (double)t->from_plain, (double)t->to_plain, t->error[0] ? t->error : NULL, NULL, NULL, NULL);
  }
  tunnel_kill(t);
}

// ---- listeners ----------------------------------------------------------------------------------------
static void on_listener_poll(uv_poll_t *handle, int status, int events) {
  (void)events;
  listener *l = handle->data;
  if (status < 0) return;
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    struct sockaddr_storage address;
    socklen_t length = sizeof address;
    int fd = accept4(l->fd, (struct sockaddr *)&address, &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) break; // EAGAIN, or a transient error (EMFILE, ECONNABORTED): the next event retries
    char remote[64];
    format_address(&address, remote, sizeof remote);
    set_nodelay(fd);
    if (l->ctx) {
      session *s = session_new(fd, 1, l->ctx->ssl, remote);
      s->listener_id = l->id;
      s->keepalive_ms = l->keepalive_ms;
      s->keepalive_timeout_ms = l->keepalive_timeout_ms;
      s->limits = l->limits;
      uv_timer_start(s->timer, on_keepalive, (uint64_t)s->limits.handshake_timeout_ms, 0);
      s->state = S_HANDSHAKE;
      session_handshake(s);
    } else {
      tunnel *t = tunnel_new(fd, 0);
      emit(EV_ACCEPT, t->id, l->id, 0, remote, NULL, NULL, NULL);
    }
  }
  settle();
}

// ---- N-API ----------------------------------------------------------------------------------------------
static napi_value throw_error(napi_env env, const char *code, const char *message) {
  napi_value error, code_value, message_value;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &message_value);
  napi_create_error(env, NULL, message_value, &error);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value);
  napi_set_named_property(env, error, "code", code_value);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_errno(napi_env env, const char *call, int err) {
  char message[200];
  snprintf(message, sizeof message, "%s: %s", call, strerror(err));
  return throw_error(env, errno_name(err), message);
}

#define ARGS(count)                                                  \
  size_t argc = count;                                               \
  napi_value argv[count];                                            \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);              \
  if (argc < count) return throw_error(env, "EINVAL", "missing arguments")

// COUNT arguments of which the last may be absent (read as undefined).
#define ARGS_OPTIONAL_LAST(count)                                    \
  size_t argc = count;                                               \
  napi_value argv[count];                                            \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);              \
  if (argc < count - 1) return throw_error(env, "EINVAL", "missing arguments")

static int get_double(napi_env env, napi_value value, double *out) { return napi_get_value_double(env, value, out) == napi_ok; }

// An adopted socket (made by JS elsewhere, e.g. inside a pod's network namespace by the netns addon):
// -1 when VALUE is undefined, -2 when it is not an integer naming an open socket (a file, a pipe
// are refused untouched). The engine owns (and closes) it from here.
static int adopted_fd(napi_env env, napi_value value) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type == napi_undefined) return -1;
  double number;
  if (type != napi_number || napi_get_value_double(env, value, &number) != napi_ok || !(number >= 0 && number <= 1e9) || number != (double)(int)number) return -2;
  int fd = (int)number;
  struct stat info;
  if (fstat(fd, &info) < 0 || !S_ISSOCK(info.st_mode)) return -2;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return -2;
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
}

// The object an id argument names, or NULL (not a number, stale, or another kind).
static void *arg_object(napi_env env, napi_value value, enum kind kind) {
  double id;
  return get_double(env, value, &id) ? id_get(id, kind) : NULL;
}

static int get_int(napi_env env, napi_value value, int *out) {
  double number;
  if (!get_double(env, value, &number) || !(number >= -2147483648.0 && number <= 2147483647.0)) return 0;
  *out = (int)number;
  return 1;
}

// A string argument into a fresh buffer (NULL: not a string or too long).
static char *get_string(napi_env env, napi_value value, size_t max) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok || length > max) return NULL;
  char *text = malloc(length + 1);
  if (!text) return NULL;
  napi_get_value_string_utf8(env, value, text, length + 1, &length);
  return text;
}

static napi_value number(napi_env env, double value) {
  napi_value result;
  napi_create_double(env, value, &result);
  return result;
}

static napi_value boolean(napi_env env, int value) {
  napi_value result;
  napi_get_boolean(env, value != 0, &result);
  return result;
}

// init(onEvent): the one callback every event goes to, as (type, id, n1, n2, s1, s2, s3, s4).
static napi_value js_init(napi_env env, napi_callback_info info) {
  ARGS(1);
  if (engine_env) return throw_error(env, "EALREADY", "the HBONE engine is already initialised");
  engine_env = env;
  napi_create_reference(env, argv[0], 1, &callback_ref);
  napi_value resource, name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "ztctl:hbone", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &async_context);
  napi_get_uv_event_loop(env, &loop);
  dispatch_async = malloc(sizeof *dispatch_async);
  uv_async_init(loop, dispatch_async, on_dispatch_async);
  uv_unref((uv_handle_t *)dispatch_async);
  return NULL;
}

static int load_pem_certs(const char *pem, STACK_OF(X509) *out) {
  BIO *bio = BIO_new_mem_buf(pem, -1);
  X509 *cert;
  while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL))) sk_X509_push(out, cert);
  ERR_clear_error(); // the loop ends on "no start line"
  BIO_free(bio);
  return sk_X509_num(out);
}

static int select_h2(SSL *ssl, const unsigned char **out, unsigned char *out_length, const unsigned char *in, unsigned int in_length, void *arg) {
  (void)ssl, (void)arg;
  for (unsigned int i = 0; i < in_length;) {
    unsigned int length = in[i];
    if (i + 1 + length > in_length) break;
    if (length == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
      *out = in + i + 1;
      *out_length = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + length;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL; // HBONE is h2 only: no fallback
}

// contextCreate(certPem, keyPem, caPem, server) → id: TLS 1.3 only, AES-GCM, ALPN h2, mutual
// authentication against the mesh CA, no tickets — ztunnel's parameters (src/lib/proxy/hbone/tls.ts).
static napi_value js_context_create(napi_env env, napi_callback_info info) {
  ARGS(4);
  char *cert_pem = get_string(env, argv[0], 1 << 20), *key_pem = get_string(env, argv[1], 1 << 20), *ca_pem = get_string(env, argv[2], 1 << 22);
  bool server = false;
  napi_get_value_bool(env, argv[3], &server);
  napi_value result = NULL;
  SSL_CTX *ctx = NULL;
  STACK_OF(X509) *chain = sk_X509_new_null(), *cas = sk_X509_new_null();
  EVP_PKEY *key = NULL;
  const char *problem = NULL;
  if (!cert_pem || !key_pem || !ca_pem) problem = "certificate, key and CA must be PEM strings";
  else if (load_pem_certs(cert_pem, chain) == 0) problem = "no certificate in the certificate PEM";
  else if (load_pem_certs(ca_pem, cas) == 0) problem = "no certificate in the CA PEM";
  else {
    BIO *bio = BIO_new_mem_buf(key_pem, -1);
    key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!key) problem = "no private key in the key PEM";
  }
  if (!problem) {
    ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384");
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_read_ahead(ctx, 0); // our read BIO reads ahead (in_bio_read); a layered session's is memory
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    for (int i = 0; i < sk_X509_num(cas); i++) X509_STORE_add_cert(store, sk_X509_value(cas, i));
    if (SSL_CTX_use_certificate(ctx, sk_X509_value(chain, 0)) != 1) problem = "the certificate was refused";
    for (int i = 1; !problem && i < sk_X509_num(chain); i++) SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i));
    if (!problem && SSL_CTX_use_PrivateKey(ctx, key) != 1) problem = "the private key was refused";
    if (!problem && SSL_CTX_check_private_key(ctx) != 1) problem = "the private key does not match the certificate";
    if (server) SSL_CTX_set_alpn_select_cb(ctx, select_h2, NULL);
    else SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3);
  }
  if (problem) {
    char message[400];
    tls_error_text(problem, message, sizeof message); // the problem, then OpenSSL's reason
    if (ctx) SSL_CTX_free(ctx);
    throw_error(env, "ZT_ERR_TLS_CONTEXT", message);
  } else {
    context *c = calloc(1, sizeof *c);
    c->ssl = ctx;
    c->id = id_new(K_CONTEXT, c);
    result = number(env, c->id);
  }
  ERR_clear_error();
  sk_X509_pop_free(chain, X509_free);
  sk_X509_pop_free(cas, X509_free);
  EVP_PKEY_free(key);
  free(cert_pem);
  free(key_pem);
  free(ca_pem);
  return result;
}

// contextFree(id): sessions keep their own reference (SSL objects hold the SSL_CTX).
static napi_value js_context_free(napi_env env, napi_callback_info info) {
  ARGS(1);
  context *c = arg_object(env, argv[0], K_CONTEXT);
  if (!c) return boolean(env, 0);
  SSL_CTX_free(c->ssl);
  id_free(c->id);
  free(c);
  return boolean(env, 1);
}

static int local_port(int fd) {
  struct sockaddr_storage actual;
  socklen_t actual_length = sizeof actual;
  if (getsockname(fd, (struct sockaddr *)&actual, &actual_length) < 0) return 0;
  return ntohs(actual.ss_family == AF_INET ? ((struct sockaddr_in *)&actual)->sin_port : ((struct sockaddr_in6 *)&actual)->sin6_port);
}

static int open_listener(const char *host, int port, int *bound_port, int *err) {
  struct sockaddr_storage address;
  socklen_t length;
  if (parse_address(host, port, &address, &length) < 0) {
    *err = EINVAL;
    return -1;
  }
  int fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&address, length) < 0 || listen(fd, 4096) < 0) {
    *err = errno;
    close(fd);
    return -1;
  }
  *bound_port = local_port(fd);
  return fd;
}

// One bound from the limits object: absent keeps the default; present must be a number within [MIN, MAX].
static int get_limit(napi_env env, napi_value object, const char *name, double min, double max, double *out) {
  bool has = false;
  napi_value value;
  if (napi_has_named_property(env, object, name, &has) != napi_ok) return 0;
  if (!has) return 1;
  double number;
  if (napi_get_named_property(env, object, name, &value) != napi_ok || !get_double(env, value, &number) || !(number >= min && number <= max)) return 0;
  *out = number;
  return 1;
}

// {maxConcurrentStreams, maxHeaderListBytes, maxHeaderPairs, resetBurst, resetRatePerSecond, handshakeTimeoutMs,
// idleSessionMs} (HBONE_BOUNDS' names) over DEFAULT_LIMITS; undefined = the defaults.
static int get_limits(napi_env env, napi_value value, limits *out) {
  *out = DEFAULT_LIMITS;
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  if (type == napi_undefined) return 1;
  if (type != napi_object) return 0;
  double streams = out->max_streams, header_bytes = out->max_header_bytes, header_pairs = out->max_header_pairs;
  double handshake = out->handshake_timeout_ms, idle = out->idle_session_ms;
  int ok = get_limit(env, value, "maxConcurrentStreams", 1, 1 << 20, &streams)
    && get_limit(env, value, "maxHeaderListBytes", 64, 1 << 20, &header_bytes)
    && get_limit(env, value, "maxHeaderPairs", 4, 1024, &header_pairs)
    && get_limit(env, value, "resetBurst", 1, 1e6, &out->reset_burst)
    && get_limit(env, value, "resetRatePerSecond", 0, 1e6, &out->reset_rate)
    && get_limit(env, value, "handshakeTimeoutMs", 1, 600000, &handshake)
    && get_limit(env, value, "idleSessionMs", 0, 86400000, &idle);
  out->max_streams = (int)streams;
  out->max_header_bytes = (int)header_bytes;
  out->max_header_pairs = (int)header_pairs;
  out->handshake_timeout_ms = (int)handshake;
  out->idle_session_ms = (int)idle;
  return ok;
}

// listen(host, port, contextId | -1, keepaliveMs, keepaliveTimeoutMs, limits | undefined, fd?) → [id, port]. With a
// context it is an HBONE (TLS) listener bounded by LIMITS, else a plain one whose connections become tunnels (EV_ACCEPT).
// FD: an already listening socket to adopt instead of binding HOST:PORT (a pod's, made in its namespace).
static napi_value js_listen(napi_env env, napi_callback_info info) {
  ARGS_OPTIONAL_LAST(7);
  char *host = get_string(env, argv[0], 64);
  int port, keepalive_ms, keepalive_timeout_ms;
  double context_id;
  limits bounds;
  if (!host || !get_int(env, argv[1], &port) || !get_double(env, argv[2], &context_id) || !get_int(env, argv[3], &keepalive_ms) || !get_int(env, argv[4], &keepalive_timeout_ms)
      || !get_limits(env, argv[5], &bounds)) {
    free(host);
    return throw_error(env, "EINVAL", "listen(host, port, context, keepaliveMs, keepaliveTimeoutMs, limits): bad arguments");
  }
  context *c = context_id >= 0 ? id_get(context_id, K_CONTEXT) : NULL;
  if (context_id >= 0 && !c) {
    free(host);
    return throw_error(env, "EINVAL", "unknown TLS context");
  }
  int err = 0, bound_port = 0;
  int fd = adopted_fd(env, argv[6]);
  if (fd == -2) {
    free(host);
    return throw_error(env, "EBADF", "listen: the adopted listener is not an open socket");
  }
  if (fd >= 0) bound_port = local_port(fd);
  else fd = open_listener(host, port, &bound_port, &err);
  free(host);
  if (fd < 0) return throw_errno(env, "listen", err);
  listener *l = calloc(1, sizeof *l);
  l->fd = fd;
  l->ctx = c;
  l->keepalive_ms = keepalive_ms;
  l->keepalive_timeout_ms = keepalive_timeout_ms;
  l->limits = bounds;
  l->id = id_new(K_LISTENER, l);
  l->poll = poll_new(fd, l);
  uv_poll_start(l->poll, UV_READABLE, on_listener_poll);
  napi_value result;
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, number(env, l->id));
  napi_set_element(env, result, 1, number(env, bound_port));
  return result;
}

// listenerSetContext(id, contextId): new handshakes use the renewed certificate.
static napi_value js_listener_set_context(napi_env env, napi_callback_info info) {
  ARGS(2);
  listener *l = arg_object(env, argv[0], K_LISTENER);
  context *c = arg_object(env, argv[1], K_CONTEXT);
  if (!l || !c || !l->ctx) return boolean(env, 0);
  l->ctx = c;
  return boolean(env, 1);
}

static napi_value js_listener_close(napi_env env, napi_callback_info info) {
  ARGS(1);
  listener *l = arg_object(env, argv[0], K_LISTENER);
  if (!l) return boolean(env, 0);
  close_handle((uv_handle_t *)l->poll);
  if (l->fd >= 0) close(l->fd);
  id_free(l->id);
  free(l);
  return boolean(env, 1);
}

// listenVirtual(contextId, keepaliveMs, keepaliveTimeoutMs, limits | undefined) → id: an HBONE listener without a
// socket; its sessions arrive over hub streams (carrier(…, server = true, id)) and are bounded by LIMITS like a
// socket listener's. EV_SESSION_READY names it as usual.
static napi_value js_listen_virtual(napi_env env, napi_callback_info info) {
  ARGS(4);
  context *c = arg_object(env, argv[0], K_CONTEXT);
  int keepalive_ms, keepalive_timeout_ms;
  limits bounds;
  if (!c || !get_int(env, argv[1], &keepalive_ms) || !get_int(env, argv[2], &keepalive_timeout_ms) || !get_limits(env, argv[3], &bounds)) {
    return throw_error(env, "EINVAL", "listenVirtual(context, keepaliveMs, keepaliveTimeoutMs, limits): bad arguments");
  }
  listener *l = calloc(1, sizeof *l);
  if (!l) abort();
  l->fd = -1;
  l->ctx = c;
  l->keepalive_ms = keepalive_ms;
  l->keepalive_timeout_ms = keepalive_timeout_ms;
  l->limits = bounds;
  l->id = id_new(K_LISTENER, l);
  return number(env, l->id);
}

// connect(contextId, host, port, timeoutMs, keepaliveMs, keepaliveTimeoutMs, fd?) → session id. The outcome
// comes as EV_SESSION_READY (with the peer's SPIFFE ID and serial, for JS to pin) or EV_SESSION_FAILED.
// FD: an unconnected socket to dial from (made inside a pod's namespace, with its mark) instead of a new one.
static napi_value js_connect(napi_env env, napi_callback_info info) {
  ARGS_OPTIONAL_LAST(7);
  int port, timeout_ms, keepalive_ms, keepalive_timeout_ms;
  char *host = get_string(env, argv[1], 64);
  context *c = arg_object(env, argv[0], K_CONTEXT);
  if (!host || !c || !get_int(env, argv[2], &port) || !get_int(env, argv[3], &timeout_ms) || !get_int(env, argv[4], &keepalive_ms) || !get_int(env, argv[5], &keepalive_timeout_ms)) {
    free(host);
    return throw_error(env, "EINVAL", "connect(context, host, port, timeoutMs, keepaliveMs, keepaliveTimeoutMs): bad arguments");
  }
  struct sockaddr_storage address;
  socklen_t length;
  int parsed = parse_address(host, port, &address, &length);
  char remote[64];
  snprintf(remote, sizeof remote, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
  free(host);
  if (parsed < 0) return throw_error(env, "EINVAL", "connect: the host must be an IP address");
  int fd = adopted_fd(env, argv[6]);
  if (fd == -2) return throw_error(env, "EBADF", "connect: the adopted socket is not open");
  if (fd < 0) fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  set_nodelay(fd);
  session *s = session_new(fd, 0, c->ssl, remote);
  s->listener_id = -1;
  s->keepalive_ms = keepalive_ms;
  s->keepalive_timeout_ms = keepalive_timeout_ms;
  uv_timer_start(s->timer, on_keepalive, (uint64_t)(timeout_ms > 0 ? timeout_ms : HANDSHAKE_TIMEOUT_MS), 0);
  if (connect(fd, (struct sockaddr *)&address, length) < 0 && errno != EINPROGRESS) {
    char message[160];
    snprintf(message, sizeof message, "%s: %s", errno_name(errno), strerror(errno));
    session_fail(s, message);
  } else {
    s->state = S_CONNECTING;
    session_update_poll(s);
  }
  schedule_settle();
  return number(env, s->id);
}

// sessionClose(id, graceful): graceful sends GOAWAY and lets open streams finish; else the
// connection ends now and its tunnels are reset.
static napi_value js_session_close(napi_env env, napi_callback_info info) {
  ARGS(2);
  bool graceful = false;
  session *s = arg_object(env, argv[0], K_SESSION);
  napi_get_value_bool(env, argv[1], &graceful);
  if (!s || s->dead) return boolean(env, 0);
  if (graceful && s->state == S_OPEN) {
    // GOAWAY naming the last stream we took: no new streams either way, open ones finish, then the
    // session ends by itself (nghttp2 stops wanting to read or write).
    nghttp2_submit_goaway(s->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->h2), NGHTTP2_NO_ERROR, NULL, 0);
    session_pump(s);
  } else {
    session_fail(s, "closed by the agent");
  }
  schedule_settle();
  return boolean(env, 1);
}

// Extra request/response headers from JS: an array of strings, name then value, at most 16 pairs.
typedef struct header_list {
  nghttp2_nv nv[2 + 16];
  char *texts[32];
  uint32_t text_count;
  size_t count;
} header_list;

static void free_headers(header_list *list) {
  for (uint32_t i = 0; i < list->text_count; i++) free(list->texts[i]);
  list->text_count = 0;
}

// Appends the pairs of ARRAY to LIST; 0 on success, -1 when it is not a short list of short strings.
static int read_headers(napi_env env, napi_value array, header_list *list) {
  bool is_array = false;
  uint32_t count = 0;
  napi_is_array(env, array, &is_array);
  if (!is_array) return -1;
  napi_get_array_length(env, array, &count);
  if (count > 32 || count % 2) return -1;
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    napi_get_element(env, array, i, &element);
    list->texts[list->text_count] = get_string(env, element, MAX_HEADER_VALUE);
    if (!list->texts[list->text_count]) return -1;
    list->text_count++;
  }
  for (uint32_t i = list->text_count - count; i < list->text_count; i += 2)
    list->nv[list->count++] = (nghttp2_nv){(uint8_t *)list->texts[i], (uint8_t *)list->texts[i + 1], strlen(list->texts[i]), strlen(list->texts[i + 1]), NGHTTP2_NV_FLAG_NONE};
  return 0;
}

// A Buffer argument (undefined/null: none) appended to OUT; 0 on success, -1 when it is not a Buffer or too long.
static int append_buffer_arg(napi_env env, napi_value value, bytes *out, size_t max) {
  napi_valuetype type;
  napi_typeof(env, value, &type);
  if (type == napi_undefined || type == napi_null) return 0;
  bool is_buffer = false;
  napi_is_buffer(env, value, &is_buffer);
  if (!is_buffer) return -1;
  void *data;
  size_t length;
  napi_get_buffer_info(env, value, &data, &length);
  if (length > max) return -1;
  return length ? bytes_append(out, data, length, max) : 0;
}

// A CONNECT for T on session S with AUTHORITY and the extra headers; the stream id, or < 0.
static int32_t submit_connect(session *s, tunnel *t, const char *authority, header_list *extra) {
  nghttp2_nv nva[2 + 16];
  size_t count = 0;
  nva[count++] = (nghttp2_nv){(uint8_t *)":method", (uint8_t *)"CONNECT", 7, 7, NGHTTP2_NV_FLAG_NONE};
  nva[count++] = (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)authority, 10, strlen(authority), NGHTTP2_NV_FLAG_NONE};
  for (size_t i = 0; i < extra->count; i++) nva[count++] = extra->nv[i];
  nghttp2_data_provider provider = {.source = {.ptr = provider_ref(t)}, .read_callback = read_plain};
  t->deferred = 1;
  int32_t stream_id = nghttp2_submit_request(s->h2, NULL, nva, count, &provider, t);
  if (stream_id >= 0) {
    tunnel_attach(t, s, stream_id);
    session_pump(s);
  }
  return stream_id;
}

// open(tunnelId, sessionId, authority, headers[], prefix?, reply?) → true: a CONNECT for the tunnel's plain
// socket; EV_RESPONSE follows. False when the session cannot take a stream now (JS picks another). PREFIX
// (a Buffer) goes on the stream before the socket is read, REPLY to the socket when 200 arrives (a proxy's
// handshake leftovers and its success reply).
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) return throw_error(env, "EINVAL", "missing arguments");
  tunnel *t = arg_object(env, argv[0], K_TUNNEL);
  session *s = arg_object(env, argv[1], K_SESSION);
  if (!t || t->server || t->session || t->established || t->dead || t->fd < 0 || t->finishing || t->kind != P_FD) return throw_error(env, "EINVAL", "open: the tunnel is not a waiting client tunnel");
  char *authority = get_string(env, argv[2], 300);
  header_list extra = {0};
  bytes prefix = {0}, reply = {0};
  napi_value result = NULL;
  if (!authority || read_headers(env, argv[3], &extra) < 0) throw_error(env, "EINVAL", "open: bad authority or headers");
  else if ((argc > 4 && append_buffer_arg(env, argv[4], &prefix, 1 << 20) < 0) || (argc > 5 && append_buffer_arg(env, argv[5], &reply, MAX_LOCAL_WRITE) < 0))
    throw_error(env, "EINVAL", "open: prefix and reply must be Buffers (at most 1 MiB and 64 KiB)");
  else if (!s || s->dead || s->state != S_OPEN || s->server || s->goaway || submit_connect(s, t, authority, &extra) < 0) result = boolean(env, 0);
  else {
    // The client's handshake is over: its socket is read only once the stream is up.
    t->preface = 0;
    free(t->early.data);
    free(t->reply.data);
    t->early = prefix;
    t->reply = reply;
    prefix = reply = (bytes){0};
    tunnel_update_poll(t);
    result = boolean(env, 1);
  }
  free(prefix.data);
  free(reply.data);
  free_headers(&extra);
  free(authority);
  schedule_settle();
  return result;
}

// peek(tunnelId, maxBytes) → true: hand the first MAXBYTES the plain socket brings to JS as EV_DATA
// (a proxy's handshake); n1 = the byte count, -1 once the client closed, -2 on a socket error.
static napi_value js_peek(napi_env env, napi_callback_info info) {
  ARGS(2);
  tunnel *t = arg_object(env, argv[0], K_TUNNEL);
  int max;
  if (!get_int(env, argv[1], &max) || max < 1 || max > (1 << 20)) return throw_error(env, "EINVAL", "peek(tunnel, maxBytes): maxBytes must be 1..1048576");
  if (!t || t->dead || t->server || t->session || t->established || t->fd < 0 || t->finishing || t->kind != P_FD) return boolean(env, 0);
  t->preface = 1;
  t->preface_left = (size_t)max;
  tunnel_update_poll(t);
  return boolean(env, 1);
}

// write(tunnelId, buffer) → true: BUFFER to a waiting plain socket (a handshake reply); false when the
// tunnel is gone or more than 64 KiB would wait.
static napi_value js_write(napi_env env, napi_callback_info info) {
  ARGS(2);
  tunnel *t = arg_object(env, argv[0], K_TUNNEL);
  if (!t || t->dead || t->server || t->established || t->fd < 0 || t->finishing || t->kind != P_FD) return boolean(env, 0);
  size_t before = bytes_size(&t->pending);
  if (append_buffer_arg(env, argv[1], &t->pending, MAX_LOCAL_WRITE) < 0) return boolean(env, 0);
  t->local_pending += bytes_size(&t->pending) - before;
  tunnel_flush_pending(t);
  tunnel_update_poll(t);
  schedule_settle();
  return boolean(env, 1);
}

// finish(tunnelId, buffer?) → true: give up a waiting plain socket politely: BUFFER (a refusal reply),
// then FIN, then close once the client closes (at most 1 s later). No EV_CLOSED follows.
static napi_value js_finish(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) return throw_error(env, "EINVAL", "missing arguments");
  tunnel *t = arg_object(env, argv[0], K_TUNNEL);
  if (!t || t->dead || t->server || t->established || t->fd < 0 || t->finishing || t->kind != P_FD) return boolean(env, 0);
  if (t->session) {
    tunnel_reset_stream(t, NGHTTP2_CANCEL);
    session *s = t->session;
    tunnel_detach(t, 1);
    t->stream_id = 0;
    session_pump(s);
  }
  size_t before = bytes_size(&t->pending);
  if (argc > 1) append_buffer_arg(env, argv[1], &t->pending, MAX_LOCAL_WRITE);
  t->local_pending += bytes_size(&t->pending) - before;
  t->preface = 0;
  t->finishing = 1;
  t->released = 1;
  t->plain_eof = 0;
  plain_side_io(t, 0, UV_WRITABLE);
  schedule_settle();
  return boolean(env, 1);
}

// pair() → [tunnelId, fd]: a waiting client tunnel whose plain side is a socketpair; JS holds the other
// end (FD, for net.Socket) and speaks over it (UDP datagrams, framed). open() it like an accepted one.
static napi_value js_pair(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) return throw_errno(env, "socketpair", errno);
  tunnel *t = tunnel_new(fds[0], 0);
  napi_value result;
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, number(env, t->id));
  napi_set_element(env, result, 1, number(env, fds[1]));
  return result;
}

// accept(tunnelId, ip, port, timeoutMs, fd?): the server side dials the target; 200 once connected, 503 if
// not (EV_DIAL_RESULT either way). FD: an unconnected socket to dial from (a pod's) instead of a new one;
// the engine owns it even when the tunnel is gone.
static napi_value js_accept(napi_env env, napi_callback_info info) {
  ARGS_OPTIONAL_LAST(5);
  int port, timeout_ms;
  tunnel *t = arg_object(env, argv[0], K_TUNNEL);
  char *host = get_string(env, argv[1], 64);
  if (!host || !get_int(env, argv[2], &port) || !get_int(env, argv[3], &timeout_ms)) {
    free(host);
    return throw_error(env, "EINVAL", "accept(tunnel, ip, port, timeoutMs): bad arguments");
  }
  struct sockaddr_storage address;
  socklen_t length;
  int parsed = parse_address(host, port, &address, &length);
  free(host);
  int given = adopted_fd(env, argv[4]);
  if (parsed < 0 || given == -2) {
    if (given >= 0) close(given);
    return throw_error(env, "EINVAL", parsed < 0 ? "accept: the target must be an IP address" : "accept: the adopted socket is not open");
  }
  if (!t || !t->server || t->dead || t->established || t->dialing || t->released || !t->session || t->h2_closed || t->kind != P_FD) {
    if (given >= 0) close(given);
    return boolean(env, 0);
  }
  t->awaiting = 0;
  int fd = given >= 0 ? given : socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    dial_finished(t, errno);
    schedule_settle();
    return boolean(env, 1);
  }
  t->fd = fd;
  t->dialing = 1;
  if (connect(fd, (struct sockaddr *)&address, length) < 0 && errno != EINPROGRESS) {
    dial_finished(t, errno);
  } else {
    if (!t->timer) t->timer = timer_new(t);
    uv_timer_start(t->timer, on_dial_timeout, (uint64_t)(timeout_ms > 0 ? timeout_ms : 10000), 0);
    tunnel_update_poll(t);
  }
  schedule_settle();
  return boolean(env, 1);
}

// refuse(tunnelId, status, reason?): answer the CONNECT with STATUS (400/401/503) and end the stream;
// REASON, in words, travels as the ztctl-reason header.
static napi_value js_refuse(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return throw_error(env, "EINVAL", "missing arguments");
  int status;
  tunnel *t = arg_object(env, argv[0], K_TUNNEL);
  if (!get_int(env, argv[1], &status) || status < 400 || status > 599) return throw_error(env, "EINVAL", "refuse(tunnel, status): status must be 4xx or 5xx");
  if (!t || !t->server || t->dead || t->established || t->dialing || t->kind != P_FD) return boolean(env, 0);
  char *reason = NULL;
  if (argc > 2) {
    napi_valuetype type;
    napi_typeof(env, argv[2], &type);
    if (type == napi_string) reason = get_string(env, argv[2], 4096);
  }
  if (reason && strlen(reason) > 190) reason[190] = '\0';
  if (reason) for (char *c = reason; *c; c++) if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = ' '; // a valid header value
  t->released = 1;
  t->awaiting = 0;
  session *s = t->session;
  if (s && !s->dead && !t->h2_closed) {
    char text[8];
    snprintf(text, sizeof text, "%d", status);
    nghttp2_nv header = {(uint8_t *)"ztctl-reason", (uint8_t *)reason, 12, reason ? strlen(reason) : 0, NGHTTP2_NV_FLAG_NONE};
    submit_status_with(s, t->stream_id, text, &header, reason && reason[0] ? 1 : 0, NULL);
    session_pump(s);
  }
  free(reason);
  tunnel_check(t);
  schedule_settle();
  return boolean(env, 1);
}

// An unanswered request T may be answered by JS now.
static int answerable(tunnel *t) {
  return t && t->server && !t->dead && t->awaiting && !t->established && !t->dialing && !t->released && t->session && !t->session->dead && !t->h2_closed && t->kind == P_FD && t->fd < 0;
}

// acceptPair(tunnelId) → fd: answer the CONNECT 200 with a socketpair as its plain side; JS holds the
// other end (FD) and speaks over it (a UDP exit). -1 when the request is gone.
static napi_value js_accept_pair(napi_env env, napi_callback_info info) {
  ARGS(1);
  tunnel *t = arg_object(env, argv[0], K_TUNNEL);
  if (!answerable(t)) return number(env, -1);
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) return throw_errno(env, "socketpair", errno);
  t->awaiting = 0;
  t->fd = fds[0];
  t->established = 1;
  nghttp2_data_provider provider = {.source = {.ptr = provider_ref(t)}, .read_callback = read_plain};
  submit_status(t->session, t->stream_id, "200", &provider);
  tunnel_flush_pending(t); // what the client sent before our 200
  session_pump(t->session);
  tunnel_update_poll(t);
  tunnel_check(t);
  schedule_settle();
  return number(env, fds[1]);
}

// splice(tunnelA, tunnelB, headersA[], headersB[]) → true: answer both unanswered CONNECTs 200 (each
// with its extra headers) and join their streams (a hub relay). EV_CLOSED follows for each.
static napi_value js_splice(napi_env env, napi_callback_info info) {
  ARGS(4);
  tunnel *a = arg_object(env, argv[0], K_TUNNEL), *b = arg_object(env, argv[1], K_TUNNEL);
  if (!answerable(a) || !answerable(b) || a == b) return boolean(env, 0);
  header_list extra_a = {0}, extra_b = {0};
  napi_value result;
  if (read_headers(env, argv[2], &extra_a) < 0 || read_headers(env, argv[3], &extra_b) < 0 || extra_a.count > MAX_EXTRA_HEADERS || extra_b.count > MAX_EXTRA_HEADERS) {
    result = throw_error(env, "EINVAL", "splice: headers must be short lists of short strings");
  } else {
    tunnel *sides[2] = {a, b};
    header_list *extras[2] = {&extra_a, &extra_b};
    a->peer = b;
    b->peer = a;
    for (int i = 0; i < 2; i++) {
      tunnel *t = sides[i];
      t->kind = P_SPLICE;
      t->awaiting = 0;
      t->established = 1;
      nghttp2_data_provider provider = {.source = {.ptr = provider_ref(t)}, .read_callback = read_plain};
      submit_status_with(t->session, t->stream_id, "200", extras[i]->nv, extras[i]->count, &provider);
    }
    // Bytes either client sent before its 200 already wait in its pending queue.
    for (int i = 0; i < 2; i++) pump_later(sides[i]->session);
    if (a->peer_ended) splice_wake(b);
    if (b->peer_ended) splice_wake(a);
    result = boolean(env, 1);
  }
  free_headers(&extra_a);
  free_headers(&extra_b);
  schedule_settle();
  return result;
}

// carrier(sessionId, authority, headers[], server, contextOrListenerId, keepaliveMs, keepaliveTimeoutMs,
// timeoutMs) → [tunnelId, innerSessionId]: a CONNECT whose stream, once answered 200, carries a new
// TLS + HTTP/2 session end to end (a hub relay). SERVER false: the inner session is a client with that
// context (pin it on EV_SESSION_READY; TIMEOUTMS bounds answer + handshake); true: a server of that
// (virtual) listener, which waits for its 200 as long as it takes (a hub's standby stream).
static napi_value js_carrier(napi_env env, napi_callback_info info) {
  ARGS(8);
  session *s = arg_object(env, argv[0], K_SESSION);
  bool server = false;
  int keepalive_ms, keepalive_timeout_ms, timeout_ms;
  napi_get_value_bool(env, argv[3], &server);
  if (!get_int(env, argv[5], &keepalive_ms) || !get_int(env, argv[6], &keepalive_timeout_ms) || !get_int(env, argv[7], &timeout_ms)) {
    return throw_error(env, "EINVAL", "carrier: bad timers");
  }
  listener *l = server ? arg_object(env, argv[4], K_LISTENER) : NULL;
  context *c = server ? (l ? l->ctx : NULL) : arg_object(env, argv[4], K_CONTEXT);
  if (!c) return throw_error(env, "EINVAL", server ? "carrier: unknown HBONE listener" : "carrier: unknown TLS context");
  if (!s || s->dead || s->state != S_OPEN || s->server || s->goaway || s->layered) return boolean(env, 0);
  char *authority = get_string(env, argv[1], 300);
  header_list extra = {0};
  napi_value result = NULL;
  if (!authority || read_headers(env, argv[2], &extra) < 0) {
    result = throw_error(env, "EINVAL", "carrier: bad authority or headers");
  } else {
    tunnel *t = tunnel_new(-1, 0);
    t->kind = P_INNER;
    session *inner = session_new(-1, server, c->ssl, "");
    inner->carrier = t;
    inner->state = S_CONNECTING;
    inner->listener_id = server ? l->id : -1;
    inner->keepalive_ms = server ? l->keepalive_ms : keepalive_ms;
    inner->keepalive_timeout_ms = server ? l->keepalive_timeout_ms : keepalive_timeout_ms;
    if (server) inner->limits = l->limits;
    if (!server && timeout_ms > 0) uv_timer_start(inner->timer, on_keepalive, (uint64_t)timeout_ms, 0);
    t->inner = inner;
    if (submit_connect(s, t, authority, &extra) < 0) {
      session_fail(inner, "the connection to the hub takes no new stream");
      result = boolean(env, 0);
    } else {
      napi_create_array_with_length(env, 2, &result);
      napi_set_element(env, result, 0, number(env, t->id));
      napi_set_element(env, result, 1, number(env, inner->id));
    }
  }
  free_headers(&extra);
  free(authority);
  schedule_settle();
  return result;
}

// sessionInfo(id) → [rttMicroseconds (-1: not measured yet), open streams], or null for an unknown id.
static napi_value js_session_info(napi_env env, napi_callback_info info) {
  ARGS(1);
  session *s = arg_object(env, argv[0], K_SESSION);
  napi_value result;
  if (!s || s->dead) {
    napi_get_null(env, &result);
    return result;
  }
  double streams = 0;
  for (tunnel *t = s->tunnels; t; t = t->next) streams++;
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, number(env, s->rtt_us));
  napi_set_element(env, result, 1, number(env, streams));
  return result;
}

// abort(tunnelId, message): reset both sides now (policy change, revocation, drain deadline); an
// established tunnel reports EV_CLOSED with MESSAGE. A waiting client tunnel is released silently.
static napi_value js_abort(napi_env env, napi_callback_info info) {
  ARGS(2);
  tunnel *t = arg_object(env, argv[0], K_TUNNEL);
  if (!t || t->dead) return boolean(env, 0);
  char *message = get_string(env, argv[1], 150);
  session *s = t->session;
  if (t->established || t->kind != P_FD) {
    tunnel_set_error(t, message ? message : "aborted");
    t->rst_code = NGHTTP2_CANCEL;
  } else {
    t->released = 1;
    if (t->dialing) dial_finished(t, ECANCELED);
  }
  tunnel_reset_stream(t, NGHTTP2_CANCEL);
  tunnel_close_plain(t, 1);
  if (s && !s->dead) {
    tunnel_detach(t, 1);
    t->h2_closed = 1;
    session_pump(s);
  }
  tunnel_check(t);
  free(message);
  schedule_settle();
  return boolean(env, 1);
}

// cancel(tunnelId): give up a client tunnel's unanswered CONNECT (reset the stream) and keep its plain
// socket for another endpoint.
static napi_value js_cancel(napi_env env, napi_callback_info info) {
  ARGS(1);
  tunnel *t = arg_object(env, argv[0], K_TUNNEL);
  if (!t || t->server || t->dead || t->established || !t->session || t->kind != P_FD) return boolean(env, 0);
  session *s = t->session;
  tunnel_reset_stream(t, NGHTTP2_CANCEL);
  tunnel_detach(t, 1);
  t->stream_id = 0;
  t->responded = 1;
  session_pump(s);
  schedule_settle();
  return boolean(env, 1);
}

// An accepted plain connection JS has not opened, peeked or answered yet.
static tunnel *untouched_plain(napi_env env, napi_value id) {
  tunnel *t = arg_object(env, id, K_TUNNEL);
  if (!t || t->server || t->dead || t->session || t->established || t->preface || t->finishing || t->kind != P_FD || t->fd < 0) return NULL;
  return t;
}

// plainFd(tunnelId) → the accepted plain socket's fd (JS reads SO_ORIGINAL_DST on it), -1 when not such a tunnel.
static napi_value js_plain_fd(napi_env env, napi_callback_info info) {
  ARGS(1);
  tunnel *t = untouched_plain(env, argv[0]);
  return number(env, t ? t->fd : -1);
}

// detach(tunnelId) → fd: JS takes an accepted plain socket back (node:net carries it); the tunnel is gone,
// no event follows. -1 when not such a tunnel.
static napi_value js_detach(napi_env env, napi_callback_info info) {
  ARGS(1);
  tunnel *t = untouched_plain(env, argv[0]);
  if (!t) return number(env, -1);
  int fd = t->fd;
  close_handle((uv_handle_t *)t->poll); // libuv forgets the fd before node's handle adopts it
  t->poll = NULL;
  t->poll_mask = 0;
  t->fd = -1;
  t->released = 1;
  tunnel_kill(t);
  schedule_settle();
  return number(env, fd);
}

// ---- relays: plain ↔ plain ------------------------------------------------------------------------------
// An accepted plain connection joined to one the engine dials (from a socket JS made, e.g. inside a pod's
// namespace): the in-pod path's 15006, local fast path and passthrough. No stream, no TLS: each direction
// recv()s into one shared buffer and send()s it on at once; what the receiver does not take waits in that
// direction's pending queue (at most one read) and the sender is not read again until it drained, so a
// slow reader pushes back through the kernel's buffers to the writer. FIN crosses as shutdown(SHUT_WR)
// once what came before it is written; a reset or an error on either end resets both (SO_LINGER 0). The
// relay ends once both FINs crossed (no linger: there is no stream whose end we would wait for), or on a
// reset, with one EV_CLOSED (bytes read from / written to the accepted end). A failed dial resets the
// accepted end and reports EV_DIAL_RESULT only. Freed at the end of the call or callback that ended it.
// recv/send beat splice(2) through a pipe pair per direction in bench/ambient/relay-micro.ts (the pipes cost
// every connection four fds and two syscalls, and bought no throughput on loopback; docs/hbone.md).
#define RELAY_CHUNK (128 * 1024)   // bytes per recv(): also the most one direction holds in user space
#define RELAY_READS 8              // reads per direction per readiness, so one busy relay cannot starve the loop

struct relay;

typedef struct relay_end {
  struct relay *owner;
  int index;                    // 0: the accepted connection, 1: the dialled one
  int fd;
  uv_poll_t *poll;
  int poll_mask;
  int eof;                      // this end sent its FIN
  int shut_wr;                  // we sent ours to it
  bytes pending;                // read from the other end, not yet written to this one
  uint64_t read, written;
} relay_end;

typedef struct relay {
  double id;
  relay_end end[2];
  int dialing, established, released, dead;
  uv_timer_t *timer;            // the dial's deadline
  char error[200];
} relay;

static uint8_t relay_buffer[RELAY_CHUNK];

static void relay_free(relay *r) {
  for (int i = 0; i < 2; i++) {
    relay_end *e = &r->end[i];
    close_handle((uv_handle_t *)e->poll);
    if (e->fd >= 0) close(e->fd);
    free(e->pending.data);
  }
  close_handle((uv_handle_t *)r->timer);
  id_free(r->id);
  free(r);
}

// The end of every call or callback that touched R: free it once it ended (events name it by id only).
static void relay_done(relay *r) {
  if (r->dead) relay_free(r);
}

static void relay_set_error(relay *r, const char *message) {
  if (!r->error[0]) snprintf(r->error, sizeof r->error, "%s", message);
}

// Close both ends (RESET: with SO_LINGER 0, the peers see RST) and report, once.
static void relay_end_all(relay *r, int reset) {
  if (r->dead) return;
  for (int i = 0; i < 2; i++) {
    relay_end *e = &r->end[i];
    close_handle((uv_handle_t *)e->poll); // before close(fd): libuv forgets the fd number first
    e->poll = NULL;
    if (e->fd < 0) continue;
    if (reset) {
      struct linger abort_linger = {1, 0};
      setsockopt(e->fd, SOL_SOCKET, SO_LINGER, &abort_linger, sizeof abort_linger);
    }
    close(e->fd);
    e->fd = -1;
  }
  stop_timer(r->timer);
  r->dead = 1;
  if (!r->released) emit(EV_CLOSED, r->id, (double)r->end[0].read, (double)r->end[0].written, r->error[0] ? r->error : NULL, NULL, NULL, NULL);
}

// An error on end I while DOING: resets are the peer's to give (no message), anything else is named.
static void relay_fail(relay *r, int i, int err, const char *doing) {
  if (err != ECONNRESET && err != EPIPE) {
    char message[160];
    snprintf(message, sizeof message, "%s %s the %s side: %s", errno_name(err), doing, i == 0 ? "accepted" : "dialled", strerror(err));
    relay_set_error(r, message);
  }
  relay_end_all(r, 1);
}

// Bytes read from the other end that end E has not taken yet.
static size_t relay_queued(const relay_end *e) { return bytes_size(&e->pending); }

// End I gets its FIN once the other end sent one and everything before it was written.
static void relay_forward_fin(relay *r, int i) {
  relay_end *e = &r->end[i];
  if (e->shut_wr || e->fd < 0 || !r->end[1 - i].eof || relay_queued(e) > 0) return;
  shutdown(e->fd, SHUT_WR);
  e->shut_wr = 1;
}

// Send DATA to end I; what it does not take now goes to its pending queue. 0, or -1 once the relay ended.
static int relay_send(relay *r, int i, const uint8_t *data, size_t length) {
  relay_end *e = &r->end[i];
  size_t offset = 0;
  while (offset < length) {
    ssize_t sent = send(e->fd, data + offset, length - offset, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      relay_fail(r, i, errno, "writing to");
      return -1;
    }
    offset += (size_t)sent;
  }
  e->written += offset;
  // The queue is empty whenever the other end is read, so this holds at most one read.
  if (offset < length && bytes_append(&e->pending, data + offset, length - offset, 2 * RELAY_CHUNK) < 0) {
    relay_set_error(r, "out of memory relaying");
    relay_end_all(r, 1);
    return -1;
  }
  return 0;
}

// Write end I's pending queue; once drained, a FIN that waited behind it follows.
static int relay_flush(relay *r, int i) {
  relay_end *e = &r->end[i];
  while (bytes_size(&e->pending) > 0) {
    ssize_t sent = send(e->fd, e->pending.data + e->pending.start, bytes_size(&e->pending), MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return 0;
      relay_fail(r, i, errno, "writing to");
      return -1;
    }
    e->written += (size_t)sent;
    bytes_consumed(&e->pending, (size_t)sent, 0); // an idle relay holds no buffer
  }
  relay_forward_fin(r, i);
  return 0;
}

// Move what end I sent to the other end, while the other end takes it.
static int relay_move(relay *r, int i) {
  relay_end *from = &r->end[i], *to = &r->end[1 - i];
  for (int reads = 0; reads < RELAY_READS; reads++) {
    if (from->eof || relay_queued(to) > 0) return 0;
    ssize_t got = recv(from->fd, relay_buffer, sizeof relay_buffer, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return 0;
      relay_fail(r, i, errno, "reading from");
      return -1;
    }
    if (got == 0) {
      from->eof = 1;
      relay_forward_fin(r, 1 - i);
      return 0;
    }
    from->read += (uint64_t)got;
    if (relay_send(r, 1 - i, relay_buffer, (size_t)got) < 0) return -1;
    if ((size_t)got < sizeof relay_buffer) return 0; // drained: the next readiness brings more
  }
  return 0;
}

static void on_relay_poll(uv_poll_t *handle, int status, int events);

// Each end is read while it has not sent FIN and the other end keeps up, written while it has a queue.
static void relay_update_polls(relay *r) {
  for (int i = 0; i < 2 && !r->dead; i++) {
    relay_end *e = &r->end[i];
    int mask = 0;
    if (r->dialing && i == 1) mask = UV_WRITABLE;
    else if (r->established) {
      if (!e->eof && relay_queued(&r->end[1 - i]) == 0) mask |= UV_READABLE;
      if (relay_queued(e) > 0) mask |= UV_WRITABLE;
    }
    if (mask == e->poll_mask) continue;
    if (!e->poll && !(e->poll = poll_new(e->fd, e))) {
      relay_set_error(r, "cannot poll the socket");
      relay_end_all(r, 1);
      return;
    }
    e->poll_mask = mask;
    if (mask) uv_poll_start(e->poll, mask, on_relay_poll);
    else uv_poll_stop(e->poll);
  }
}

// Both FINs crossed and nothing waits: done.
static void relay_check(relay *r) {
  if (r->dead || !r->established) return;
  for (int i = 0; i < 2; i++) if (!r->end[i].eof || !r->end[i].shut_wr) return;
  relay_end_all(r, 0);
}

static void relay_dial_finished(relay *r, int err) {
  r->dialing = 0;
  stop_timer(r->timer);
  if (err) {
    emit(EV_DIAL_RESULT, r->id, 0, 0, errno_name(err), strerror(err), NULL, NULL);
    r->released = 1;
    relay_end_all(r, 1); // the client sees what it would without us: the connection fails
    return;
  }
  set_nodelay(r->end[1].fd);
  r->established = 1;
  emit(EV_DIAL_RESULT, r->id, 0, 0, "", NULL, NULL, NULL);
  relay_update_polls(r);
}

static void on_relay_dial_timeout(uv_timer_t *handle) {
  relay *r = handle->data;
  if (!r->dead && r->dialing) relay_dial_finished(r, ETIMEDOUT);
  relay_done(r);
  settle();
}

static void on_relay_poll(uv_poll_t *handle, int status, int events) {
  relay_end *e = handle->data;
  relay *r = e->owner;
  int i = e->index;
  if (r->dead) return;
  if (r->dialing) {
    int err = 0;
    socklen_t length = sizeof err;
    if (getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &length) < 0) err = errno;
    if (!err && status < 0) err = -status;
    relay_dial_finished(r, err);
  } else {
    if (status < 0) events |= UV_READABLE | UV_WRITABLE;
    if ((events & UV_WRITABLE) && relay_queued(e) > 0) relay_flush(r, i);
    if (!r->dead && (events & (UV_READABLE | UV_DISCONNECT))) relay_move(r, i);
    if (!r->dead) {
      // What end I just took may let the other end be read again: move it now rather than a turn later.
      if (relay_queued(e) == 0 && (events & UV_WRITABLE)) relay_move(r, 1 - i);
    }
    if (!r->dead) relay_check(r);
    if (!r->dead) relay_update_polls(r);
  }
  relay_done(r);
  settle();
}

// relay(tunnelId, ip, port, timeoutMs, fd?) → relay id, or -1 when TUNNEL_ID is not an accepted plain
// connection JS left untouched. Takes that connection's socket from the tunnel (which is gone, no event) and
// dials IP:PORT from FD (an unconnected socket, e.g. a pod's with its mark; the engine owns it either way)
// or a new socket; EV_DIAL_RESULT ('' = connected, else an errno name) then, once connected, EV_CLOSED.
static napi_value js_relay(napi_env env, napi_callback_info info) {
  ARGS_OPTIONAL_LAST(5);
  int port, timeout_ms;
  char *host = get_string(env, argv[1], 64);
  if (!host || !get_int(env, argv[2], &port) || !get_int(env, argv[3], &timeout_ms)) {
    free(host);
    return throw_error(env, "EINVAL", "relay(tunnel, ip, port, timeoutMs, fd?): bad arguments");
  }
  struct sockaddr_storage address;
  socklen_t length;
  int parsed = parse_address(host, port, &address, &length);
  free(host);
  int given = adopted_fd(env, argv[4]);
  if (given == -2) return throw_error(env, "EBADF", "relay: the adopted socket is not an open socket");
  if (parsed < 0) {
    if (given >= 0) close(given);
    return throw_error(env, "EINVAL", "relay: the target must be an IP address");
  }
  tunnel *t = untouched_plain(env, argv[0]);
  if (!t) {
    if (given >= 0) close(given);
    return number(env, -1);
  }
  int fd = given >= 0 ? given : socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  relay *r = calloc(1, sizeof *r);
  if (!r) abort();
  r->id = id_new(K_RELAY, r);
  for (int i = 0; i < 2; i++) r->end[i] = (relay_end){.owner = r, .index = i, .fd = -1};
  // The accepted socket leaves its tunnel as detach() hands it to JS.
  r->end[0].fd = t->fd;
  close_handle((uv_handle_t *)t->poll);
  t->poll = NULL;
  t->poll_mask = 0;
  t->fd = -1;
  t->released = 1;
  tunnel_kill(t);
  r->end[1].fd = fd;
  r->dialing = 1;
  r->timer = timer_new(r);
  if (connect(fd, (struct sockaddr *)&address, length) < 0 && errno != EINPROGRESS) {
    relay_dial_finished(r, errno);
  } else {
    uv_timer_start(r->timer, on_relay_dial_timeout, (uint64_t)(timeout_ms > 0 ? timeout_ms : 10000), 0);
    relay_update_polls(r);
  }
  double id = r->id;
  relay_done(r);
  schedule_settle();
  return number(env, id);
}

// relayAbort(relayId, message): reset both ends; EV_CLOSED carries MESSAGE (while dialling: EV_DIAL_RESULT
// ECANCELED, no EV_CLOSED). false: no such relay.
static napi_value js_relay_abort(napi_env env, napi_callback_info info) {
  ARGS(2);
  relay *r = arg_object(env, argv[0], K_RELAY);
  if (!r || r->dead) return boolean(env, 0);
  if (r->dialing) {
    relay_dial_finished(r, ECANCELED);
  } else {
    char *message = get_string(env, argv[1], 150);
    relay_set_error(r, message ? message : "aborted");
    free(message);
    relay_end_all(r, 1);
  }
  relay_done(r);
  schedule_settle();
  return boolean(env, 1);
}

// stats() → [sessions, tunnels, relays] alive, for tests and config_dump.
static napi_value js_stats(napi_env env, napi_callback_info info) {
  (void)info;
  double sessions = 0, tunnels = 0, relays = 0;
  for (uint32_t i = 0; i < slot_count; i++) {
    if (slots[i].kind == K_SESSION) sessions++;
    if (slots[i].kind == K_TUNNEL) tunnels++;
    if (slots[i].kind == K_RELAY) relays++;
  }
  napi_value result;
  napi_create_array_with_length(env, 3, &result);
  napi_set_element(env, result, 0, number(env, sessions));
  napi_set_element(env, result, 1, number(env, tunnels));
  napi_set_element(env, result, 2, number(env, relays));
  return result;
}

static napi_value module_init(napi_env env, napi_value exports) {
  in_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ztctl-in");
  BIO_meth_set_read_ex(in_method, in_bio_read);
  BIO_meth_set_ctrl(in_method, in_bio_ctrl);
  BIO_meth_set_create(in_method, bio_create);
  out_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ztctl-out");
  BIO_meth_set_write_ex(out_method, out_bio_write);
  BIO_meth_set_ctrl(out_method, out_bio_ctrl);
  BIO_meth_set_create(out_method, bio_create);
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_session_callbacks_set_data_source_read_length_callback(callbacks, data_length);
  nghttp2_option_new(&h2_options);
  nghttp2_option_set_no_auto_window_update(h2_options, 1);
  nghttp2_option_set_peer_max_concurrent_streams(h2_options, 100);
  napi_property_descriptor properties[] = {
    {"init", NULL, js_init, NULL, NULL, NULL, napi_default, NULL},
    {"contextCreate", NULL, js_context_create, NULL, NULL, NULL, napi_default, NULL},
    {"contextFree", NULL, js_context_free, NULL, NULL, NULL, napi_default, NULL},
    {"listen", NULL, js_listen, NULL, NULL, NULL, napi_default, NULL},
    {"listenerSetContext", NULL, js_listener_set_context, NULL, NULL, NULL, napi_default, NULL},
    {"listenerClose", NULL, js_listener_close, NULL, NULL, NULL, napi_default, NULL},
    {"connect", NULL, js_connect, NULL, NULL, NULL, napi_default, NULL},
    {"sessionClose", NULL, js_session_close, NULL, NULL, NULL, napi_default, NULL},
    {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
    {"accept", NULL, js_accept, NULL, NULL, NULL, napi_default, NULL},
    {"refuse", NULL, js_refuse, NULL, NULL, NULL, napi_default, NULL},
    {"abort", NULL, js_abort, NULL, NULL, NULL, napi_default, NULL},
    {"cancel", NULL, js_cancel, NULL, NULL, NULL, napi_default, NULL},
    {"stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL},
    {"peek", NULL, js_peek, NULL, NULL, NULL, napi_default, NULL},
    {"write", NULL, js_write, NULL, NULL, NULL, napi_default, NULL},
    {"finish", NULL, js_finish, NULL, NULL, NULL, napi_default, NULL},
    {"pair", NULL, js_pair, NULL, NULL, NULL, napi_default, NULL},
    {"acceptPair", NULL, js_accept_pair, NULL, NULL, NULL, napi_default, NULL},
    {"splice", NULL, js_splice, NULL, NULL, NULL, napi_default, NULL},
    {"carrier", NULL, js_carrier, NULL, NULL, NULL, napi_default, NULL},
    {"listenVirtual", NULL, js_listen_virtual, NULL, NULL, NULL, napi_default, NULL},
    {"sessionInfo", NULL, js_session_info, NULL, NULL, NULL, napi_default, NULL},
    {"plainFd", NULL, js_plain_fd, NULL, NULL, NULL, napi_default, NULL},
    {"detach", NULL, js_detach, NULL, NULL, NULL, napi_default, NULL},
    {"relay", NULL, js_relay, NULL, NULL, NULL, napi_default, NULL},
    {"relayAbort", NULL, js_relay_abort, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

NAPI_MODULE(ztctl_hbone, module_init)
