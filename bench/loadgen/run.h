/* The run's shared state: clients, counters, and the event-loop helpers of net.c. */
#ifndef RUN_H
#define RUN_H

#include "lg.h"

struct run {
  int ep;
  struct client *clients;
  int nclients;
  uint32_t magic;
  struct track *track;
  uint8_t *payload;
  /* counters */
  long handshaking; /* clients between connect() and CONNACK (SUBACK for subscribers) */
  long conn_ok, conn_fail, sub_ok, sub_fail, dropped, proto_err;
  uint64_t pub_sent, pub_acked, recv, recv_window, recv_foreign, dup;
  struct hist lat, conn;
  char last_error[160];
  /* phase clocks (ns, CLOCK_MONOTONIC) */
  uint64_t t_pub_start, t_window_end, t_last_ack, t_last_recv;
  int publishing; /* publishers may issue messages */
  int closing;    /* we are disconnecting: closed sockets are not "dropped" */
  struct client *run_head, *run_tail;
};

extern struct run R;

void set_error(const char *fmt, ...);
void client_start_connect(struct client *c);
void client_on_event(struct client *c, uint32_t events);
int client_flush(struct client *c); /* 0 ok (maybe partial), -1 connection lost */
void client_close(struct client *c, int lost);
void pub_queue(struct client *c);
void pub_pump(struct client *c);
int pub_can_issue(const struct client *c, uint64_t now);
void pub_finish(struct client *c); /* no more messages: fence the QoS 0 tail */
void keepalive_tick(uint64_t now);

#endif
