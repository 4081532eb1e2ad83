// ztctl-cni: the ztctl CNI plugin (CNI spec 0.4.0 / 1.0.0, chained after the node's primary plugin).
// The container runtime runs it on the host for every pod sandbox; it holds no policy of its own. It reads
// the network configuration (stdin, with prevResult) and the CNI_* environment, forwards them to the
// node's CNI agent (`ztctl cni run`, the socket named by the "socket" key of its configuration) and
// answers as the agent says:
//   ADD    the agent decides whether the pod is enrolled and sets its redirection up before the pod's
//          containers start; the plugin prints prevResult unchanged (passes it through)
//   DEL    the agent removes what ADD made; always succeeds when no agent answers (nothing to undo)
//   CHECK  the agent checks the redirection is in place
//   VERSION the versions spoken, without asking anyone
// No agent on the socket (not installed yet, restarting): ADD passes prevResult through and the agent
// reconciles the pod when it starts. Garbage input gets a CNI error JSON on stdout and exit 1; every read
// and write has a deadline, and an alarm ends the plugin whatever happens, so it never hangs a sandbox.
// A static executable with no dependency: the DaemonSet copies it into the node's CNI bin directory.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_INPUT (1024 * 1024)
#define MAX_REPLY (64 * 1024)
#define MAX_DEPTH 64
#define DEADLINE_SECONDS 30
#define SOCKET_TIMEOUT_SECONDS 25
#define DEFAULT_SOCKET "/var/run/ztctl/cni.sock"
#define SUPPORTED "[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\"]"

// CNI's well-known error codes
enum { E_VERSION = 1, E_ENV = 4, E_IO = 5, E_DECODE = 6, E_CONFIG = 7, E_TRY_LATER = 11 };

struct span { const char *start; size_t length; };

static const char *cni_version = "1.0.0";

// --- output -----------------------------------------------------------------------------------------

static void write_all(int fd, const char *data, size_t length) {
  while (length > 0) {
    ssize_t n = write(fd, data, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    length -= (size_t)n;
  }
}

static void put_json_string(FILE *out, const char *text, size_t length) {
  fputc('"', out);
  for (size_t i = 0; i < length; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
    else if (c < 0x20) fprintf(out, "\\u%04x", c);
    else fputc(c, out);
  }
  fputc('"', out);
}

static void put_json_cstring(FILE *out, const char *text) { put_json_string(out, text, strlen(text)); }

__attribute__((noreturn)) static void fail(int code, const char *message, const char *details) {
  // stdout carries exactly one error object (the runtime reads it); stderr gets the same in words
  printf("{\"cniVersion\":");
  put_json_cstring(stdout, cni_version);
  printf(",\"code\":%d,\"msg\":", code);
  put_json_cstring(stdout, message);
  if (details && *details) {
    printf(",\"details\":");
    put_json_cstring(stdout, details);
  }
  printf("}\n");
  fflush(stdout);
  fprintf(stderr, "ztctl-cni: %s%s%s\n", message, details && *details ? ": " : "", details ? details : "");
  exit(1);
}

static void on_alarm(int signal_number) {
  (void)signal_number;
  static const char text[] = "{\"code\":11,\"msg\":\"ztctl-cni ran out of time (the CNI agent did not answer)\"}\n";
  write_all(1, text, sizeof text - 1);
  _exit(1);
}

// --- a JSON scanner: validates a document and finds the spans of top-level keys -----------------------

struct scanner { const char *at; const char *end; int depth; };

static void skip_space(struct scanner *s) {
  while (s->at < s->end && (*s->at == ' ' || *s->at == '\t' || *s->at == '\n' || *s->at == '\r')) s->at++;
}

static int scan_value(struct scanner *s);

static int scan_string(struct scanner *s) {
  if (s->at >= s->end || *s->at != '"') return 0;
  for (s->at++; s->at < s->end; s->at++) {
    unsigned char c = (unsigned char)*s->at;
    if (c == '"') {
      s->at++;
      return 1;
    }
    if (c < 0x20) return 0;
    if (c == '\\') {
      if (++s->at >= s->end) return 0;
      if (*s->at == 'u') {
        for (int i = 0; i < 4; i++) {
          if (++s->at >= s->end || !strchr("0123456789abcdefABCDEF", *s->at) || *s->at == '\0') return 0;
        }
      } else if (!strchr("\"\\/bfnrt", *s->at) || *s->at == '\0') {
        return 0;
      }
    }
  }
  return 0;
}

static int scan_literal(struct scanner *s, const char *word) {
  size_t length = strlen(word);
  if ((size_t)(s->end - s->at) < length || memcmp(s->at, word, length) != 0) return 0;
  s->at += length;
  return 1;
}

static int scan_number(struct scanner *s) {
  const char *start = s->at;
  if (s->at < s->end && *s->at == '-') s->at++;
  while (s->at < s->end && strchr("0123456789.eE+-", *s->at) && *s->at != '\0') s->at++;
  return s->at > start && s->at[-1] != '-';
}

// Members of an object or elements of an array; for the top-level object, ON_MEMBER sees each key/value.
typedef void (*member_fn)(struct span key, struct span value);

static int scan_container(struct scanner *s, char close, member_fn on_member) {
  if (++s->depth > MAX_DEPTH) return 0;
  s->at++;
  skip_space(s);
  if (s->at < s->end && *s->at == close) {
    s->at++;
    s->depth--;
    return 1;
  }
  for (;;) {
    struct span key = {0, 0};
    if (close == '}') {
      skip_space(s);
      key.start = s->at;
      if (!scan_string(s)) return 0;
      key.length = (size_t)(s->at - key.start);
      skip_space(s);
      if (s->at >= s->end || *s->at != ':') return 0;
      s->at++;
    }
    skip_space(s);
    struct span value = {s->at, 0};
    if (!scan_value(s)) return 0;
    value.length = (size_t)(s->at - value.start);
    if (on_member && close == '}') on_member(key, value);
    skip_space(s);
    if (s->at >= s->end) return 0;
    if (*s->at == ',') {
      s->at++;
      continue;
    }
    if (*s->at != close) return 0;
    s->at++;
    s->depth--;
    return 1;
  }
}

static int scan_value(struct scanner *s) {
  skip_space(s);
  if (s->at >= s->end) return 0;
  switch (*s->at) {
    case '{': return scan_container(s, '}', NULL);
    case '[': return scan_container(s, ']', NULL);
    case '"': return scan_string(s);
    case 't': return scan_literal(s, "true");
    case 'f': return scan_literal(s, "false");
    case 'n': return scan_literal(s, "null");
    default: return scan_number(s);
  }
}

static struct span key_cni_version, key_prev_result, key_socket;

static int key_is(struct span key, const char *name) {
  size_t length = strlen(name);
  return key.length == length + 2 && memcmp(key.start + 1, name, length) == 0;
}

static void on_top_member(struct span key, struct span value) {
  if (key_is(key, "cniVersion")) key_cni_version = value;
  else if (key_is(key, "prevResult")) key_prev_result = value;
  else if (key_is(key, "socket")) key_socket = value;
}

/** A plain string value (no escapes) as a C string; NULL when it is not one. */
static char *plain_string(struct span value) {
  if (value.length < 2 || value.start[0] != '"' || memchr(value.start, '\\', value.length)) return NULL;
  char *text = strndup(value.start + 1, value.length - 2);
  return text;
}

// --- talking to the CNI agent -------------------------------------------------------------------------

static const char *env_or_empty(const char *name) {
  const char *value = getenv(name);
  return value ? value : "";
}

/** Connect to the agent; -1 when nobody listens there (not installed, restarting). */
static int connect_agent(const char *path) {
  if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) fail(E_CONFIG, "the \"socket\" path is too long", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(E_IO, "cannot create a Unix socket", strerror(errno));
  struct timeval timeout = {SOCKET_TIMEOUT_SECONDS, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  strcpy(address.sun_path, path);
  if (connect(fd, (struct sockaddr *)&address, sizeof address) == 0) return fd;
  int error = errno;
  close(fd);
  if (error == ENOENT || error == ECONNREFUSED) return -1;
  fail(E_TRY_LATER, "cannot reach the ztctl CNI agent", strerror(error));
}

/** Send the request (one JSON object, then end of stream) and read the whole reply. */
static size_t ask_agent(int fd, const char *command, const char *input, size_t input_length, char *reply) {
  FILE *out = fdopen(dup(fd), "w");
  if (!out) fail(E_IO, "cannot write to the CNI agent", strerror(errno));
  fprintf(out, "{\"version\":1,\"command\":");
  put_json_cstring(out, command);
  const char *fields[][2] = {{"containerId", "CNI_CONTAINERID"}, {"netns", "CNI_NETNS"}, {"ifname", "CNI_IFNAME"}, {"args", "CNI_ARGS"}, {"path", "CNI_PATH"}};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    fprintf(out, ",\"%s\":", fields[i][0]);
    put_json_cstring(out, env_or_empty(fields[i][1]));
  }
  fprintf(out, ",\"config\":");
  fwrite(input, 1, input_length, out);
  fprintf(out, "}");
  if (fclose(out) != 0) fail(E_TRY_LATER, "the ztctl CNI agent did not take the request", strerror(errno));
  shutdown(fd, SHUT_WR);
  size_t length = 0;
  for (;;) {
    if (length == MAX_REPLY) fail(E_TRY_LATER, "the ztctl CNI agent's reply is too long", NULL);
    ssize_t n = read(fd, reply + length, MAX_REPLY - length);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(E_TRY_LATER, "the ztctl CNI agent did not answer", strerror(errno));
    if (n == 0) break;
    length += (size_t)n;
  }
  reply[length] = '\0';
  return length;
}

// --- main -----------------------------------------------------------------------------------------

static size_t read_input(char *input) {
  size_t length = 0;
  for (;;) {
    if (length == MAX_INPUT) fail(E_DECODE, "the network configuration on stdin is larger than 1 MiB", NULL);
    ssize_t n = read(0, input + length, MAX_INPUT - length);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(E_IO, "cannot read the network configuration from stdin", strerror(errno));
    if (n == 0) return length;
    length += (size_t)n;
  }
}

int main(void) {
  signal(SIGALRM, on_alarm);
  signal(SIGPIPE, SIG_IGN);
  alarm(DEADLINE_SECONDS);
  const char *command = env_or_empty("CNI_COMMAND");
  if (strcmp(command, "VERSION") == 0) {
    printf("{\"cniVersion\":\"1.0.0\",\"supportedVersions\":" SUPPORTED "}\n");
    return 0;
  }
  if (strcmp(command, "ADD") != 0 && strcmp(command, "DEL") != 0 && strcmp(command, "CHECK") != 0) {
    fail(E_ENV, "CNI_COMMAND must be ADD, DEL, CHECK or VERSION", command);
  }

  static char input[MAX_INPUT + 1];
  size_t input_length = read_input(input);
  struct scanner s = {input, input + input_length, 0};
  skip_space(&s);
  if (s.at >= s.end || *s.at != '{' || !scan_container(&s, '}', on_top_member)) fail(E_DECODE, "the network configuration on stdin is not a JSON object", NULL);
  skip_space(&s);
  if (s.at != s.end) fail(E_DECODE, "the network configuration on stdin has data after its JSON object", NULL);
  char *version = key_cni_version.start ? plain_string(key_cni_version) : NULL;
  if (!version) fail(E_CONFIG, "the network configuration has no \"cniVersion\" string", NULL);
  cni_version = version;
  char quoted[32];
  if (strlen(version) > 16 || (snprintf(quoted, sizeof quoted, "\"%s\"", version), !strstr(SUPPORTED, quoted))) fail(E_VERSION, "ztctl-cni speaks CNI 0.3.0, 0.3.1, 0.4.0 and 1.0.0", version);
  if (strcmp(command, "ADD") == 0 && (!key_prev_result.start || key_prev_result.start[0] != '{')) {
    fail(E_CONFIG, "ztctl-cni is a chained plugin: list it after the primary plugin of a conflist (there is no prevResult)", NULL);
  }
  char *socket_path = key_socket.start ? plain_string(key_socket) : strdup(DEFAULT_SOCKET);
  if (!socket_path || socket_path[0] != '/') fail(E_CONFIG, "the \"socket\" key must be an absolute path", NULL);

  int fd = connect_agent(socket_path);
  if (fd >= 0) {
    static char reply[MAX_REPLY + 1];
    ask_agent(fd, command, input, input_length, reply);
    close(fd);
    // The agent answers "ok", or "error CODE MESSAGE" on its first line.
    if (strncmp(reply, "error ", 6) == 0) {
      char *message = NULL;
      long code = strtol(reply + 6, &message, 10);
      char *newline = strchr(message, '\n');
      if (newline) *newline = '\0';
      while (*message == ' ') message++;
      fail(code > 0 && code < 1000 ? (int)code : E_TRY_LATER, *message ? message : "the ztctl CNI agent refused", NULL);
    }
    if (strncmp(reply, "ok", 2) != 0 || (reply[2] != '\0' && reply[2] != '\n')) {
      if (strcmp(command, "DEL") == 0) return 0;
      fail(E_TRY_LATER, "the ztctl CNI agent sent an answer this plugin does not understand", NULL);
    }
  } else if (strcmp(command, "ADD") == 0) {
    fprintf(stderr, "ztctl-cni: no CNI agent on %s; passing through (it reconciles the pod when it starts)\n", socket_path);
  }

  if (strcmp(command, "ADD") == 0) {
    write_all(1, key_prev_result.start, key_prev_result.length);
    write_all(1, "\n", 1);
  }
  return 0;
}
