/*
 * mqttx-loadgen: the MQTT 3.1.1 load generator of `make bench` (one thread, epoll,
 * non-blocking sockets, packets written by hand). Shared declarations.
 */
#ifndef LG_H
#define LG_H

#include <stddef.h>
#include <stdint.h>

#define LG_VERSION "1.0"

struct opts {
  const char *host;
  /* --port/--sub-port lists: a client of a role takes its list's entry idx % n */
#define MAX_PORTS 8
  int pub_ports[MAX_PORTS], npub_ports;
  int sub_ports[MAX_PORTS], nsub_ports;
  int pubs, subs;
  const char *topic, *sub_topic;
  int qos;
  int size;
  long count; /* messages per publisher; 0 = unlimited (duration mode) */
  double duration;
  double rate; /* per publisher, msg/s; 0 = flat out */
  int inflight, qos0_window;
  int connect_only;
  double hold;
  int conn_parallel;
  double conn_timeout;
  int keepalive;
  int clean;             /* CONNECT clean session flag (1) */
  const char *id_prefix; /* client ids are <prefix>{s|p|c}<index> (lgx<pid>-) */
  double timeout, drain, drain_max;
  int batch;
  int broker_pid;
  int quiet;
};

enum role { ROLE_SUB, ROLE_PUB, ROLE_IDLE };
enum cstate { CS_NEW, CS_CONNECTING, CS_CONNACK, CS_SUBACK, CS_READY, CS_CLOSED };

#define FENCES 8 /* PINGREQ fences a QoS 0 publisher may have outstanding */

struct client {
  int fd;
  int idx; /* index within its role */
  enum role role;
  enum cstate state;
  uint64_t t_connect, t_last_tx;
  uint8_t *in;
  size_t in_len, in_cap;
  uint8_t *out;
  size_t out_off, out_len, out_cap;
  int want_write; /* EPOLLOUT armed: the socket is full */
  /* publisher */
  char *topic;
  uint16_t topic_len;
  uint64_t issued, acked;
  uint32_t inflight;
  uint16_t next_pid;
  uint64_t next_due;
  uint32_t unfenced; /* QoS 0 messages not yet covered by a PINGREQ */
  uint32_t fence[FENCES];
  int fence_head, fence_n;
  uint32_t fenced; /* sum of fence[] */
  int finished;    /* no more messages to issue */
  int queued;      /* in the run queue */
  struct client *next_run;
};

/* main.c */
extern struct opts O;
uint64_t now_ns(void);

/* mqtt.c: packet builders append to the client's output buffer */
void out_reserve(struct client *c, size_t n);
void mqtt_connect(struct client *c, const char *client_id, int keepalive, int clean);
void mqtt_subscribe(struct client *c, uint16_t pid, const char *filter, int qos);
void mqtt_publish(struct client *c, int qos, uint16_t pid, const uint8_t *payload, size_t len);
void mqtt_ack(struct client *c, uint8_t type, uint16_t pid); /* PUBACK, PUBREC, PUBREL, PUBCOMP */
void mqtt_short(struct client *c, uint8_t type);                /* PINGREQ, DISCONNECT */
/* Length of the first complete packet in buf (header + body), 0 if incomplete, -1 if bad. */
long mqtt_frame(const uint8_t *buf, size_t len, size_t *body_at);
int topic_matches(const char *filter, const char *topic);
void expand_index(char *dst, size_t cap, const char *pattern, int idx);

/* stats.c */
struct hist {
  uint64_t n, sum, max;
  uint32_t bucket[64 * 128];
};
void hist_add(struct hist *h, uint64_t v);
uint64_t hist_pct(const struct hist *h, double p);

struct track; /* per (subscriber, publisher) sequence bitmap */
struct track *track_new(int subs, int pubs, size_t cap_bytes);
/* Returns 1 for a first delivery, 0 for a duplicate; -1 if tracking stopped (memory cap). */
int track_seen(struct track *t, int sub, int pub, uint64_t seq);
uint64_t track_distinct(struct track *t, int sub, int pub);
int track_enabled(const struct track *t);

struct usage {
  uint64_t t;
  double lg_cpu_s;
  long broker_ticks;
};
void usage_sample(struct usage *u);
long broker_rss_kb(void);

#endif
