/* One client's socket: connect, read and parse what the broker sends, write, publish. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "run.h"

/* LAT_DUMP=<file>: each delivery's send time and latency (ns), one line each, for a timeline
   of where the slowest deliveries fall (bench/p99_ab.ts TIMELINE=1). */
static void lat_dump(uint64_t sent, uint64_t lat) {
  static FILE *f;
  static int opened;
  if (!opened) {
    opened = 1;
    const char *path = getenv("LAT_DUMP");
    if (path && *path) f = fopen(path, "w");
  }
  if (f) fprintf(f, "%llu %llu\n", (unsigned long long)sent, (unsigned long long)lat);
}

struct run R;
static struct in_addr broker_ip;
static int addr_ready;

void set_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(R.last_error, sizeof R.last_error, fmt, ap);
  va_end(ap);
}

static int resolve(void) {
  if (inet_pton(AF_INET, O.host, &broker_ip) != 1) {
    set_error("--host must be a numeric IPv4 address: %s", O.host);
    return -1;
  }
  addr_ready = 1;
  return 0;
}

static void arm(struct client *c, int op, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(R.ep, op, c->fd, &ev) < 0) set_error("epoll_ctl: %s", strerror(errno));
}

static void fail_connect(struct client *c, const char *why) {
  set_error("%s", why);
  if (c->state == CS_SUBACK) R.sub_fail++;
  else R.conn_fail++;
  client_close(c, 0);
}

void client_start_connect(struct client *c) {
  c->t_connect = now_ns();
  R.handshaking++;
  if (!addr_ready && resolve() < 0) {
    c->state = CS_CONNECTING;
    fail_connect(c, R.last_error);
    return;
  }
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    c->state = CS_CONNECTING;
    fail_connect(c, strerror(errno));
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->state = CS_CONNECTING;
  /* Idle (--connect-only) clients use the --port list, like publishers. */
  const int *ports = c->role == ROLE_SUB ? O.sub_ports : O.pub_ports;
  int nports = c->role == ROLE_SUB ? O.nsub_ports : O.npub_ports;
  struct sockaddr_in broker_addr = {.sin_family = AF_INET, .sin_addr = broker_ip};
  broker_addr.sin_port = htons((uint16_t)ports[c->idx % nports]);
  if (connect(c->fd, (struct sockaddr *)&broker_addr, sizeof broker_addr) < 0 && errno != EINPROGRESS) {
    char why[96];
    snprintf(why, sizeof why, "connect: %s", strerror(errno));
    fail_connect(c, why);
    return;
  }
  c->want_write = 1;
  arm(c, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT);
  char id[128];
  if (O.id_prefix) snprintf(id, sizeof id, "%s%c%d", O.id_prefix, "spc"[c->role], c->idx);
  else snprintf(id, sizeof id, "lgx%d-%c%d", (int)getpid(), "spc"[c->role], c->idx);
  mqtt_connect(c, id, O.keepalive, O.clean);
}

static int in_handshake(const struct client *c) {
  return c->state == CS_CONNECTING || c->state == CS_CONNACK || c->state == CS_SUBACK;
}

static void handshake_done(struct client *c) {
  c->state = CS_READY;
  R.handshaking--;
}

void client_close(struct client *c, int lost) {
  if (c->state == CS_CLOSED) return;
  if (in_handshake(c)) R.handshaking--;
  if (lost && !R.closing) {
    R.dropped++;
    set_error("connection of %s %d lost", c->role == ROLE_PUB ? "publisher" : "subscriber", c->idx);
  }
  if (c->fd >= 0) close(c->fd); /* also leaves the epoll set */
  c->fd = -1;
  c->state = CS_CLOSED;
  if (c->role == ROLE_PUB) c->finished = 1;
  free(c->in);
  c->in = NULL;
  c->in_cap = c->in_len = 0;
}

int client_flush(struct client *c) {
  while (c->out_off < c->out_len) {
    ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (n > 0) {
      c->out_off += (size_t)n;
      c->t_last_tx = now_ns();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!c->want_write) arm(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
      c->want_write = 1;
      return 0;
    }
    return -1;
  }
  c->out_off = c->out_len = 0;
  if (c->want_write && c->state != CS_CONNECTING) {
    arm(c, EPOLL_CTL_MOD, EPOLLIN);
    c->want_write = 0;
  }
  return 0;
}

/* ------------------------------------------------------------ publishing */

void pub_queue(struct client *c) {
  if (c->queued || c->state != CS_READY || c->finished) return;
  c->queued = 1;
  c->next_run = NULL;
  if (R.run_tail) R.run_tail->next_run = c;
  else R.run_head = c;
  R.run_tail = c;
}

int pub_can_issue(const struct client *c, uint64_t now) {
  if (c->state != CS_READY || c->finished || c->want_write || !R.publishing) return 0;
  if (O.rate > 0 && c->next_due > now) return 0;
  if (O.qos == 0) return !O.qos0_window || c->unfenced + c->fenced < (uint32_t)O.qos0_window;
  return c->inflight < (uint32_t)O.inflight;
}

static void fence(struct client *c, uint32_t covers) {
  if (c->fence_n == FENCES) return; /* cannot happen: the window bounds it */
  c->fence[(c->fence_head + c->fence_n++) % FENCES] = covers;
  c->fenced += covers;
  mqtt_short(c, 0xc0);
}

void pub_finish(struct client *c) {
  if (c->finished) return;
  c->finished = 1;
  if (O.qos == 0 && c->unfenced && c->state == CS_READY) {
    fence(c, c->unfenced);
    c->unfenced = 0;
    if (client_flush(c) < 0) client_close(c, 1);
  }
}

/* Issue up to --batch messages, then write them out. */
void pub_pump(struct client *c) {
  uint64_t now = now_ns();
  uint64_t interval = O.rate > 0 ? (uint64_t)(1e9 / O.rate) : 0;
  int n = 0;
  while (n < O.batch && pub_can_issue(c, now)) {
    if (O.count && c->issued >= (uint64_t)O.count) break;
    uint8_t *p = R.payload;
    uint64_t seq = c->issued, ts = now_ns();
    uint32_t pub = (uint32_t)c->idx;
    memcpy(p, &ts, 8);
    memcpy(p + 8, &seq, 8);
    memcpy(p + 16, &pub, 4);
    memcpy(p + 20, &R.magic, 4);
    uint16_t pid = 0;
    if (O.qos) {
      pid = c->next_pid;
      c->next_pid = (uint16_t)(c->next_pid == 65535 ? 1 : c->next_pid + 1);
      c->inflight++;
    }
    mqtt_publish(c, O.qos, pid, p, (size_t)O.size);
    c->issued++;
    R.pub_sent++;
    n++;
    if (interval) {
      c->next_due += interval;
      if (c->next_due + 100000000ull < now) c->next_due = now - 100000000ull; /* catch up 100 ms at most */
    }
    if (O.qos == 0 && O.qos0_window) {
      c->unfenced++;
      if (c->unfenced >= (uint32_t)(O.qos0_window / 2 > 0 ? O.qos0_window / 2 : 1)) {
        fence(c, c->unfenced);
        c->unfenced = 0;
      }
    }
  }
  if (O.count && c->issued >= (uint64_t)O.count) pub_finish(c);
  if (n && client_flush(c) < 0) {
    client_close(c, 1);
    return;
  }
  if (n == O.batch) pub_queue(c); /* more to send: after the others had their turn */
}

/* ------------------------------------------------------------ what the broker sends */

static void on_acked(struct client *c, uint64_t n) {
  c->acked += n;
  R.pub_acked += n;
  R.t_last_ack = now_ns();
  pub_queue(c);
}

static void on_publish(struct client *c, uint8_t flags, const uint8_t *b, size_t len) {
  int qos = (flags >> 1) & 3;
  if (len < 2) goto bad;
  size_t tlen = (size_t)(b[0] << 8 | b[1]);
  size_t at = 2 + tlen + (qos ? 2 : 0);
  if (at > len || qos == 3) goto bad;
  uint16_t pid = qos ? (uint16_t)(b[2 + tlen] << 8 | b[3 + tlen]) : 0;
  if (qos == 1) mqtt_ack(c, 0x40, pid);
  if (qos == 2) mqtt_ack(c, 0x50, pid);
  const uint8_t *p = b + at;
  uint32_t magic, pub;
  if (len - at < 24 || (memcpy(&magic, p + 20, 4), magic != R.magic)) {
    R.recv_foreign++;
    return;
  }
  uint64_t ts, seq, now = now_ns();
  memcpy(&ts, p, 8);
  memcpy(&seq, p + 8, 8);
  memcpy(&pub, p + 16, 4);
  if (pub >= (uint32_t)O.pubs) goto bad;
  R.recv++;
  R.t_last_recv = now;
  if (R.t_window_end == 0 || now <= R.t_window_end) R.recv_window++;
  hist_add(&R.lat, now > ts ? now - ts : 0);
  lat_dump(ts, now > ts ? now - ts : 0);
  if (R.track && track_seen(R.track, c->idx, (int)pub, seq) == 0) R.dup++;
  return;
bad:
  R.proto_err++;
  set_error("malformed PUBLISH");
}

static void on_packet(struct client *c, const uint8_t *pkt, size_t body_at, size_t len) {
  uint8_t type = pkt[0] >> 4;
  const uint8_t *b = pkt + body_at;
  size_t blen = len - body_at;
  uint16_t pid = blen >= 2 ? (uint16_t)(b[0] << 8 | b[1]) : 0;
  switch (type) {
  case 2: /* CONNACK */
    if (c->state != CS_CONNACK || blen < 2) break;
    if (b[1] != 0) {
      char why[64];
      snprintf(why, sizeof why, "CONNACK return code %d", b[1]);
      fail_connect(c, why);
      return;
    }
    hist_add(&R.conn, now_ns() - c->t_connect);
    R.conn_ok++;
    if (c->role == ROLE_SUB) {
      char filter[256];
      expand_index(filter, sizeof filter, O.sub_topic, c->idx);
      mqtt_subscribe(c, 1, filter, O.qos);
      c->state = CS_SUBACK;
    } else {
      handshake_done(c);
    }
    return;
  case 9: /* SUBACK */
    if (c->state != CS_SUBACK || blen < 3) break;
    if (b[2] >= 0x80) {
      fail_connect(c, "SUBACK refused the subscription");
      return;
    }
    R.sub_ok++;
    handshake_done(c);
    return;
  case 3:
    if (c->role != ROLE_SUB || c->state != CS_READY) break;
    on_publish(c, pkt[0] & 0x0f, b, blen);
    return;
  case 4: /* PUBACK ends QoS 1 */
  case 7: /* PUBCOMP ends QoS 2 */
    if (c->role != ROLE_PUB || O.qos != (type == 4 ? 1 : 2) || !c->inflight) break;
    c->inflight--;
    on_acked(c, 1);
    return;
  case 5: /* PUBREC */
    if (c->role != ROLE_PUB || O.qos != 2) break;
    mqtt_ack(c, 0x62, pid);
    return;
  case 6: /* PUBREL (we are the receiver of a QoS 2 message) */
    if (c->role != ROLE_SUB) break;
    mqtt_ack(c, 0x70, pid);
    return;
  case 13: /* PINGRESP */
    if (c->role == ROLE_PUB && O.qos == 0 && c->fence_n) {
      uint32_t n = c->fence[c->fence_head];
      c->fence_head = (c->fence_head + 1) % FENCES;
      c->fence_n--;
      c->fenced -= n;
      on_acked(c, n);
    }
    return;
  }
  R.proto_err++;
  set_error("unexpected packet type %d", type);
}

static void on_readable(struct client *c) {
  if (!c->in) {
    c->in_cap = c->role == ROLE_IDLE ? 256 : 64 * 1024;
    c->in = malloc(c->in_cap);
  }
  for (int reads = 0; reads < 4; reads++) { /* level-triggered: the rest waits for the next turn */
    if (c->in_len == c->in_cap) { /* one packet larger than the buffer */
      c->in_cap *= 2;
      c->in = realloc(c->in, c->in_cap);
    }
    ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      if (c->state == CS_CONNACK || c->state == CS_SUBACK) fail_connect(c, "closed during handshake");
      else client_close(c, 1);
      return;
    }
    if (n < 0) break;
    c->in_len += (size_t)n;
    size_t at = 0, body;
    long len;
    while ((len = mqtt_frame(c->in + at, c->in_len - at, &body)) > 0) {
      on_packet(c, c->in + at, body, (size_t)len);
      if (c->state == CS_CLOSED) return;
      at += (size_t)len;
    }
    if (len < 0) {
      R.proto_err++;
      set_error("malformed remaining length");
      client_close(c, 1);
      return;
    }
    memmove(c->in, c->in + at, c->in_len - at);
    c->in_len -= at;
  }
  if (c->out_len > c->out_off && client_flush(c) < 0) client_close(c, 1);
}

void client_on_event(struct client *c, uint32_t events) {
  if (c->state == CS_CLOSED) return;
  if (c->state == CS_CONNECTING) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err || (events & (EPOLLERR | EPOLLHUP))) {
      char why[96];
      snprintf(why, sizeof why, "connect: %s", strerror(err ? err : ECONNREFUSED));
      fail_connect(c, why);
      return;
    }
    if (!(events & EPOLLOUT)) return;
    c->state = CS_CONNACK;
    c->want_write = 0;
    arm(c, EPOLL_CTL_MOD, EPOLLIN);
    if (client_flush(c) < 0) fail_connect(c, "write failed during handshake");
    return;
  }
  if (events & EPOLLIN) on_readable(c);
  if (c->state == CS_CLOSED) return;
  if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN)) {
    client_close(c, 1);
    return;
  }
  if (events & EPOLLOUT) {
    if (client_flush(c) < 0) {
      client_close(c, 1);
      return;
    }
    if (!c->want_write && c->role == ROLE_PUB) pub_queue(c);
  }
}

/* A client that has sent nothing for keepalive/2 s sends a PINGREQ (publishers are never idle). */
void keepalive_tick(uint64_t now) {
  uint64_t idle = (uint64_t)O.keepalive * 500000000ull;
  if (!idle) return;
  for (int i = 0; i < R.nclients; i++) {
    struct client *c = &R.clients[i];
    if (c->state != CS_READY || c->role == ROLE_PUB || now - c->t_last_tx < idle) continue;
    mqtt_short(c, 0xc0);
    if (client_flush(c) < 0) client_close(c, 1);
  }
}
