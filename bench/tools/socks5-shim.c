// socks5-shim.c - the client side of the SOCKS5 bench paths: plain TCP in on 127.0.0.1:LPORT, a SOCKS5
// CONNECT (no authentication, IPv4 target) to the proxy on 127.0.0.1:PPORT, then bytes both ways. The
// same shim stands in front of every SOCKS5 server measured (ztctl's proxy, microsocks, dante), so their
// figures differ by the server only. Two threads per connection (one per direction, blocking I/O,
// 64 KiB buffers), as ../shared/bench/tools/connrelay.c does for HTTP CONNECT.
//   socks5-shim LPORT PPORT TARGET_IP:TARGET_PORT
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFFER 65536

typedef struct {
  int client, proxy;
  int refs;
  pthread_mutex_t lock;
} link_t;

typedef struct {
  link_t *link;
  int from, to;
} direction_t;

static int proxy_port;
static struct in_addr target_ip;
static unsigned short target_port;
static pthread_attr_t attributes;

static int write_all(int fd, const void *data, size_t length) {
  const char *bytes = data;
  while (length > 0) {
    ssize_t written = write(fd, bytes, length);
    if (written <= 0) return -1;
    bytes += written;
    length -= (size_t)written;
  }
  return 0;
}

static int read_exactly(int fd, void *data, size_t length) {
  char *bytes = data;
  while (length > 0) {
    ssize_t got = read(fd, bytes, length);
    if (got <= 0) return -1;
    bytes += got;
    length -= (size_t)got;
  }
  return 0;
}

// Greeting (no authentication), CONNECT, and the 10-byte reply of an IPv4-bound answer.
static int socks_connect(void) {
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(proxy_port)};
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) < 0) goto fail;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  unsigned char greeting[3] = {5, 1, 0}, selected[2];
  if (write_all(fd, greeting, 3) || read_exactly(fd, selected, 2) || selected[0] != 5 || selected[1] != 0) goto fail;
  unsigned char request[10] = {5, 1, 0, 1};
  memcpy(request + 4, &target_ip, 4);
  request[8] = (unsigned char)(target_port >> 8);
  request[9] = (unsigned char)(target_port & 0xff);
  unsigned char reply[10];
  if (write_all(fd, request, 10) || read_exactly(fd, reply, 4) || reply[1] != 0) goto fail;
  // the bound address: 4 bytes (IPv4), 16 (IPv6) or a name, then the port
  size_t rest = reply[3] == 1 ? 6 : reply[3] == 4 ? 18 : 0;
  if (reply[3] == 3) {
    unsigned char length;
    if (read_exactly(fd, &length, 1)) goto fail;
    rest = (size_t)length + 2;
  }
  unsigned char skip[300];
  if (rest == 0 || rest > sizeof skip || read_exactly(fd, skip, rest)) goto fail;
  return fd;
fail:
  if (fd >= 0) close(fd);
  return -1;
}

static void release(link_t *link) {
  pthread_mutex_lock(&link->lock);
  int refs = --link->refs;
  pthread_mutex_unlock(&link->lock);
  if (refs > 0) return;
  close(link->client);
  close(link->proxy);
  pthread_mutex_destroy(&link->lock);
  free(link);
}

static void *pump(void *argument) {
  direction_t *direction = argument;
  char *buffer = malloc(BUFFER);
  ssize_t got;
  while (buffer && (got = read(direction->from, buffer, BUFFER)) > 0)
    if (write_all(direction->to, buffer, (size_t)got)) break;
  shutdown(direction->to, SHUT_WR); // half-close passes through
  free(buffer);
  link_t *link = direction->link;
  free(direction);
  release(link);
  return NULL;
}

static void *serve(void *argument) {
  int client = (int)(intptr_t)argument;
  int proxy = socks_connect();
  if (proxy < 0) {
    close(client);
    return NULL;
  }
  link_t *link = calloc(1, sizeof *link);
  link->client = client;
  link->proxy = proxy;
  link->refs = 2;
  pthread_mutex_init(&link->lock, NULL);
  direction_t *up = malloc(sizeof *up), *down = malloc(sizeof *down);
  *up = (direction_t){link, client, proxy};
  *down = (direction_t){link, proxy, client};
  pthread_t thread;
  if (pthread_create(&thread, &attributes, pump, up) != 0) {
    free(up);
    release(link);
  }
  pump(down);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: socks5-shim LPORT PPORT TARGET_IP:TARGET_PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  proxy_port = atoi(argv[2]);
  char target[64];
  snprintf(target, sizeof target, "%s", argv[3]);
  char *colon = strrchr(target, ':');
  if (!colon) return 2;
  *colon = 0;
  target_port = (unsigned short)atoi(colon + 1);
  if (inet_pton(AF_INET, target, &target_ip) != 1) return 2;
  pthread_attr_init(&attributes);
  pthread_attr_setstacksize(&attributes, 128 * 1024);
  pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
  int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 4096) < 0) {
    perror("socks5-shim: listen");
    return 1;
  }
  for (;;) {
    int client = accept(listener, NULL, NULL);
    if (client < 0) continue;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t thread;
    if (pthread_create(&thread, &attributes, serve, (void *)(intptr_t)client) != 0) close(client);
  }
}
