/*
 * mqttx-loadgen: connects subscribers, then publishers, publishes for --count messages or
 * --duration seconds, drains, and prints one `RESULT {json}` line (see bench/README.md).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "report.h"
#include "run.h"

struct opts O = {
    .host = "127.0.0.1", .topic = "bench/%i", .sub_topic = "bench/#",
    .size = 64, .inflight = 64, .qos0_window = 64, .hold = 10, .conn_parallel = 100,
    .conn_timeout = 10, .keepalive = 60, .clean = 1, .timeout = 120, .drain = 3, .drain_max = 15,
    .batch = 64,
};

static uint64_t deadline;
static int timed_out;
static size_t track_mem_mb = 512;

uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t secs(double s) { return (uint64_t)(s * 1e9); }

static void usage(FILE *f) {
  fprintf(f,
          "mqttx-loadgen %s: MQTT 3.1.1 load generator for mqttx's `make bench`\n"
          "  --host H --port P[,P2..]  broker (numeric IPv4; 127.0.0.1:1883); with several\n"
          "                            ports, client i of a role uses port i mod n\n"
          "  --sub-port P[,P2..]       subscribers' port(s) (the --port list)\n"
          "  --pub N --sub M           publishers, subscribers (subscribers connect first)\n"
          "  --topic T --sub-topic F   %%i = client index (bench/%%i, bench/#)\n"
          "  --qos Q --size B          QoS 0/1/2 (0); payload bytes, >= 24 (64)\n"
          "  --count K | --duration S  messages per publisher | seconds of publishing\n"
          "  --rate R                  msg/s per publisher (0 = as fast as the windows allow)\n"
          "  --inflight W              QoS 1/2 unacknowledged messages per publisher (64)\n"
          "  --qos0-window W           QoS 0: a PINGREQ fence every W/2 messages, W at most (64)\n"
          "  --connect-only N --hold S idle connections held S s after all connected (10)\n"
          "  --conn-parallel P         handshakes in progress at once (100)\n"
          "  --conn-timeout S          per-client connect + CONNACK (+ SUBACK) limit (10)\n"
          "  --keepalive S             CONNECT keep-alive (60)\n"
          "  --clean 0|1               CONNECT clean session flag (1)\n"
          "  --id-prefix X             client ids X{s|p|c}<index> (lgx<pid>-)\n"
          "  --drain S --drain-max S   wait for deliveries: S without progress (3), at most (15)\n"
          "  --timeout S               hard limit for the whole run (120)\n"
          "  --batch N                 messages per publisher per event-loop turn (64)\n"
          "  --track-mem MB            cap for loss/duplicate bitmaps (512)\n"
          "  --broker-pid PID          sample the broker's CPU and VmRSS\n"
          "  --quiet                   print only the RESULT line\n",
          LG_VERSION);
}

/* "P" or "P1,P2,...": fills ports[], returns how many; -1 when malformed. */
static int port_list(const char *arg, int *ports) {
  int n = 0;
  for (const char *p = arg; *p;) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v < 1 || v > 65535 || n == MAX_PORTS || (*end && *end != ',')) return -1;
    ports[n++] = (int)v;
    p = *end ? end + 1 : end;
  }
  return n ? n : -1;
}

static void parse(int argc, char **argv) {
  enum { HOST = 256, PORT, SUBPORT, PUB, SUB, TOPIC, SUBTOPIC, QOS, SIZE, COUNT, DURATION, RATE,
         INFLIGHT, WINDOW, CONNONLY, HOLD, PARALLEL, CTIMEOUT, KEEPALIVE, TIMEOUT, DRAIN,
         DRAINMAX, BATCH, TRACKMEM, BPID, QUIET, CLEAN, IDPREFIX, HELP };
  static const struct option longs[] = {
      {"host", 1, 0, HOST}, {"port", 1, 0, PORT}, {"sub-port", 1, 0, SUBPORT}, {"pub", 1, 0, PUB}, {"sub", 1, 0, SUB},
      {"topic", 1, 0, TOPIC}, {"sub-topic", 1, 0, SUBTOPIC}, {"qos", 1, 0, QOS},
      {"size", 1, 0, SIZE}, {"count", 1, 0, COUNT}, {"duration", 1, 0, DURATION},
      {"rate", 1, 0, RATE}, {"inflight", 1, 0, INFLIGHT}, {"qos0-window", 1, 0, WINDOW},
      {"connect-only", 1, 0, CONNONLY}, {"hold", 1, 0, HOLD},
      {"conn-parallel", 1, 0, PARALLEL}, {"conn-timeout", 1, 0, CTIMEOUT},
      {"keepalive", 1, 0, KEEPALIVE}, {"timeout", 1, 0, TIMEOUT}, {"drain", 1, 0, DRAIN},
      {"drain-max", 1, 0, DRAINMAX}, {"batch", 1, 0, BATCH}, {"track-mem", 1, 0, TRACKMEM},
      {"broker-pid", 1, 0, BPID}, {"quiet", 0, 0, QUIET},
      {"clean", 1, 0, CLEAN}, {"id-prefix", 1, 0, IDPREFIX}, {"help", 0, 0, HELP}, {0, 0, 0, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
    switch (opt) {
    case HOST: O.host = optarg; break;
    case PORT: O.npub_ports = port_list(optarg, O.pub_ports); break;
    case SUBPORT: O.nsub_ports = port_list(optarg, O.sub_ports); break;
    case PUB: O.pubs = atoi(optarg); break;
    case SUB: O.subs = atoi(optarg); break;
    case TOPIC: O.topic = optarg; break;
    case SUBTOPIC: O.sub_topic = optarg; break;
    case QOS: O.qos = atoi(optarg); break;
    case SIZE: O.size = atoi(optarg); break;
    case COUNT: O.count = atol(optarg); break;
    case DURATION: O.duration = atof(optarg); break;
    case RATE: O.rate = atof(optarg); break;
    case INFLIGHT: O.inflight = atoi(optarg); break;
    case WINDOW: O.qos0_window = atoi(optarg); break;
    case CONNONLY: O.connect_only = atoi(optarg); break;
    case HOLD: O.hold = atof(optarg); break;
    case PARALLEL: O.conn_parallel = atoi(optarg); break;
    case CTIMEOUT: O.conn_timeout = atof(optarg); break;
    case KEEPALIVE: O.keepalive = atoi(optarg); break;
    case TIMEOUT: O.timeout = atof(optarg); break;
    case DRAIN: O.drain = atof(optarg); break;
    case DRAINMAX: O.drain_max = atof(optarg); break;
    case BATCH: O.batch = atoi(optarg); break;
    case TRACKMEM: track_mem_mb = (size_t)atol(optarg); break;
    case BPID: O.broker_pid = atoi(optarg); break;
    case QUIET: O.quiet = 1; break;
    case CLEAN: O.clean = atoi(optarg) != 0; break;
    case IDPREFIX: O.id_prefix = optarg; break;
    case 'h':
    case HELP: usage(stdout); exit(0);
    default: usage(stderr); exit(2);
    }
  }
  const char *bad = optind < argc                                  ? "unexpected argument"
                    : O.npub_ports < 0 || O.nsub_ports < 0         ? "bad --port/--sub-port list"
                    : O.qos < 0 || O.qos > 2                        ? "--qos must be 0, 1 or 2"
                    : O.size < 24                                   ? "--size must be >= 24"
                    : O.inflight < 1 || O.inflight > 65535          ? "--inflight must be 1..65535"
                    : O.qos0_window < 0 || O.qos0_window > 2 * FENCES * 1000 ? "bad --qos0-window"
                    : O.batch < 1                                   ? "--batch must be >= 1"
                    : O.conn_parallel < 1                           ? "--conn-parallel must be >= 1"
                    : !O.connect_only && O.pubs + O.subs == 0       ? "nothing to do: --pub/--sub/--connect-only"
                    : O.connect_only && O.pubs + O.subs             ? "--connect-only excludes --pub/--sub"
                                                                    : NULL;
  if (bad) {
    fprintf(stderr, "mqttx-loadgen: %s\n", bad);
    exit(2);
  }
  if (!O.count && !O.duration) O.count = 100;
  if (!O.npub_ports) O.pub_ports[O.npub_ports++] = 1883;
  if (!O.nsub_ports) {
    memcpy(O.sub_ports, O.pub_ports, sizeof O.sub_ports);
    O.nsub_ports = O.npub_ports;
  }
}

static void raise_nofile(int need) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)need + 64) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static int over_deadline(void) {
  if (!timed_out && now_ns() > deadline) {
    timed_out = 1;
    set_error("--timeout hit");
  }
  return timed_out;
}

/* One event-loop turn: socket events, then one round of the publishers that may send. */
static void turn(int timeout_ms) {
  struct epoll_event ev[256];
  int n = epoll_wait(R.ep, ev, 256, R.run_head ? 0 : timeout_ms);
  for (int i = 0; i < n; i++) client_on_event(ev[i].data.ptr, ev[i].events);
  struct client *c = R.run_head;
  R.run_head = R.run_tail = NULL;
  while (c) {
    struct client *next = c->next_run;
    c->queued = 0;
    pub_pump(c);
    c = next;
  }
}

/* Connect clients [from, from+n) with at most --conn-parallel handshakes in flight. */
static void connect_range(int from, int n) {
  int next = from, lo = from;
  uint64_t limit = secs(O.conn_timeout), last_scan = 0;
  while ((next < from + n || R.handshaking > 0) && !over_deadline()) {
    while (next < from + n && R.handshaking < O.conn_parallel) client_start_connect(&R.clients[next++]);
    turn(20);
    uint64_t now = now_ns();
    if (now - last_scan < 100000000ull) continue;
    last_scan = now;
    while (lo < next && R.clients[lo].state != CS_CONNECTING && R.clients[lo].state != CS_CONNACK &&
           R.clients[lo].state != CS_SUBACK)
      lo++;
    for (int i = lo; i < next; i++) {
      struct client *c = &R.clients[i];
      int waiting = c->state == CS_CONNECTING || c->state == CS_CONNACK || c->state == CS_SUBACK;
      if (!waiting || now - c->t_connect < limit) continue;
      set_error("handshake timed out (--conn-timeout)");
      if (c->state == CS_SUBACK) R.sub_fail++;
      else R.conn_fail++;
      client_close(c, 0);
    }
  }
}

static void wait_for(double s) {
  uint64_t end = now_ns() + secs(s), tick = 0;
  while (now_ns() < end && !over_deadline()) {
    turn(100);
    if (now_ns() - tick > 1000000000ull) keepalive_tick(tick = now_ns());
  }
}

static void disconnect_all(void) {
  R.closing = 1;
  for (int i = 0; i < R.nclients; i++) {
    struct client *c = &R.clients[i];
    if (c->state == CS_READY) {
      mqtt_short(c, 0xe0);
      client_flush(c);
    }
    client_close(c, 0);
  }
}

static void connect_only(struct report *rep) {
  usage_sample(&rep->u0);
  connect_range(0, O.connect_only);
  if (!timed_out) wait_for(O.hold);
  usage_sample(&rep->u1);
  rep->rss_hold = broker_rss_kb();
  disconnect_all();
  sleep(1);
  rep->rss_after = broker_rss_kb();
}

static int all_finished(void) {
  for (int i = O.subs; i < R.nclients; i++)
    if (!R.clients[i].finished) return 0;
  return 1;
}

static uint64_t outstanding(void) {
  uint64_t n = 0;
  for (int i = O.subs; i < R.nclients; i++) {
    struct client *c = &R.clients[i];
    if (c->state == CS_READY) n += c->inflight + c->fenced + c->unfenced;
  }
  return n;
}

/* Subscribers connect and subscribe, publishers connect; then publish and drain. */
static void pubsub(struct report *rep) {
  connect_range(0, O.subs);
  connect_range(O.subs, O.pubs);
  if (timed_out) return;
  uint64_t start = now_ns(), interval = O.rate > 0 ? secs(1 / O.rate) : 0;
  R.t_pub_start = start;
  if (O.duration) R.t_window_end = start + secs(O.duration);
  usage_sample(&rep->u0);
  rep->u1 = rep->u0;
  R.publishing = 1;
  for (int i = O.subs; i < R.nclients; i++) {
    struct client *c = &R.clients[i];
    c->next_due = start + (interval * (uint64_t)c->idx) / (uint64_t)O.pubs;
    if (c->state != CS_READY) c->finished = 1;
    pub_queue(c);
  }
  uint64_t t_pub_end = 0, last_sample = start, progress = 0;
  while (!over_deadline()) {
    turn(O.rate > 0 ? 1 : 20);
    uint64_t now = now_ns();
    if (O.rate > 0 && R.publishing)
      for (int i = O.subs; i < R.nclients; i++)
        if (R.clients[i].next_due <= now) pub_queue(&R.clients[i]);
    if (R.publishing && R.t_window_end && now >= R.t_window_end) {
      R.publishing = 0;
      for (int i = O.subs; i < R.nclients; i++) pub_finish(&R.clients[i]);
    }
    if (now - last_sample >= 100000000ull) { /* the CPU window ends at the last progress */
      last_sample = now;
      if (R.pub_acked + R.recv != progress) usage_sample(&rep->u1);
      progress = R.pub_acked + R.recv;
      keepalive_tick(now);
    }
    if (!t_pub_end && all_finished()) t_pub_end = now;
    if (!t_pub_end) continue;
    int acked = outstanding() == 0;
    if (acked && R.recv >= report_expected(rep)) {
      usage_sample(&rep->u1);
      break;
    }
    uint64_t last = R.t_last_recv > R.t_last_ack ? R.t_last_recv : R.t_last_ack;
    if (last < t_pub_end) last = t_pub_end;
    if (acked && now - last > secs(O.drain)) break;
    if (now - t_pub_end > secs(O.drain_max)) break;
  }
  R.publishing = 0;
}

int main(int argc, char **argv) {
  parse(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0);
  uint64_t t0 = now_ns();
  deadline = t0 + secs(O.timeout);
  R.nclients = O.connect_only ? O.connect_only : O.pubs + O.subs;
  raise_nofile(R.nclients);
  R.clients = calloc((size_t)R.nclients, sizeof *R.clients);
  R.ep = epoll_create1(EPOLL_CLOEXEC);
  srand((unsigned)(t0 ^ (uint64_t)getpid()));
  R.magic = (uint32_t)rand() ^ ((uint32_t)rand() << 16);
  R.payload = calloc(1, (size_t)O.size);
  for (int i = 24; i < O.size; i++) R.payload[i] = (uint8_t)('a' + (i - 24) % 26);
  for (int i = 0; i < R.nclients; i++) {
    struct client *c = &R.clients[i];
    c->fd = -1;
    c->next_pid = 1;
    c->role = O.connect_only ? ROLE_IDLE : i < O.subs ? ROLE_SUB : ROLE_PUB;
    c->idx = c->role == ROLE_PUB ? i - O.subs : i;
    if (c->role == ROLE_PUB) {
      char t[256];
      expand_index(t, sizeof t, O.topic, c->idx);
      c->topic = strdup(t);
      c->topic_len = (uint16_t)strlen(t);
    }
  }
  if (O.subs && O.pubs) R.track = track_new(O.subs, O.pubs, track_mem_mb << 20);
  struct report rep = {.t0 = t0, .rss_before = broker_rss_kb(), .rss_hold = -1, .rss_after = -1};
  report_matches(&rep);
  if (O.connect_only) connect_only(&rep);
  else pubsub(&rep);
  if (!O.connect_only) disconnect_all();
  rep.rss_end = broker_rss_kb();
  return report_print(&rep, timed_out);
}
