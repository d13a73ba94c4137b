/* Expected deliveries, loss and duplicates, and the summary + `RESULT {json}` output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report.h"
#include "run.h"

void report_matches(struct report *rep) {
  rep->matches = calloc((size_t)O.pubs + 1, sizeof *rep->matches);
  char filter[256], topic[256];
  for (int s = 0; s < O.subs; s++) {
    expand_index(filter, sizeof filter, O.sub_topic, s);
    for (int p = 0; p < O.pubs; p++) {
      expand_index(topic, sizeof topic, O.topic, p);
      rep->matches[p] += topic_matches(filter, topic);
    }
  }
}

uint64_t report_expected(const struct report *rep) {
  uint64_t n = 0;
  for (int p = 0; p < O.pubs; p++) n += R.clients[O.subs + p].issued * (uint64_t)rep->matches[p];
  return n;
}

/* Messages a matching (subscriber, publisher) pair never saw; -1 when not computable. */
static long long lost(void) {
  if (!O.count || !R.track || !track_enabled(R.track)) return -1;
  long long n = 0;
  char filter[256];
  for (int s = 0; s < O.subs; s++) {
    if (R.clients[s].state == CS_NEW) continue;
    expand_index(filter, sizeof filter, O.sub_topic, s);
    for (int p = 0; p < O.pubs; p++) {
      struct client *pub = &R.clients[O.subs + p];
      if (!topic_matches(filter, pub->topic)) continue;
      n += (long long)(pub->issued - track_distinct(R.track, s, p));
    }
  }
  return n;
}

static double sec(uint64_t ns) { return (double)ns / 1e9; }
static double us(uint64_t ns) { return (double)ns / 1e3; }
static double ms(uint64_t ns) { return (double)ns / 1e6; }

static void print_nullable(const char *key, long long v) {
  if (v < 0) printf(",\"%s\":null", key);
  else printf(",\"%s\":%lld", key, v);
}

int report_print(struct report *rep, int timed_out) {
  long long lost_n = lost();
  long long dup_n = R.track && track_enabled(R.track) ? (long long)R.dup : -1;
  uint64_t expected = report_expected(rep);
  double active = sec(rep->u1.t - rep->u0.t);
  double lg_cpu = active > 0 ? 100 * (rep->u1.lg_cpu_s - rep->u0.lg_cpu_s) / active : 0;
  double broker_cpu = active > 0 && O.broker_pid
                          ? 100.0 * (double)(rep->u1.broker_ticks - rep->u0.broker_ticks) /
                                (double)sysconf(_SC_CLK_TCK) / active
                          : 0;
  double pub_elapsed = R.t_last_ack > R.t_pub_start ? sec(R.t_last_ack - R.t_pub_start) : 0;
  double recv_elapsed = R.t_last_recv > R.t_pub_start ? sec(R.t_last_recv - R.t_pub_start) : 0;
  double window = R.t_window_end ? sec(R.t_window_end - R.t_pub_start) : 0;
  uint64_t unacked = R.pub_sent - R.pub_acked;
  long conn_n = O.connect_only ? O.connect_only : O.pubs + O.subs;
  long not_started = conn_n - R.conn_ok - R.conn_fail;
  double kb_per_conn = rep->rss_hold >= 0 && rep->rss_before >= 0 && R.conn_ok
                           ? (double)(rep->rss_hold - rep->rss_before) / (double)R.conn_ok
                           : -1;
  int failed = timed_out || R.conn_fail || R.sub_fail || R.dropped || R.proto_err ||
               lost_n > 0 || dup_n > 0;

  if (!O.quiet) {
    printf("connections: %ld ok, %ld failed, connect p50 %.2f ms p99 %.2f ms\n", R.conn_ok,
           R.conn_fail, ms(hist_pct(&R.conn, 50)), ms(hist_pct(&R.conn, 99)));
    if (!O.connect_only) {
      printf("published: %llu sent, %llu acknowledged, %.0f msg/s\n",
             (unsigned long long)R.pub_sent, (unsigned long long)R.pub_acked,
             pub_elapsed > 0 ? (double)R.pub_acked / pub_elapsed : 0);
      printf("delivered: %llu of %llu expected (%llu inside the window), latency p50 %.2f ms "
             "p99 %.2f ms\n",
             (unsigned long long)R.recv, (unsigned long long)expected,
             (unsigned long long)R.recv_window, ms(hist_pct(&R.lat, 50)), ms(hist_pct(&R.lat, 99)));
    } else {
      printf("broker VmRSS: %ld KB before, %ld KB holding, %ld KB after; %.2f KB/connection\n",
             rep->rss_before, rep->rss_hold, rep->rss_after, kb_per_conn);
    }
    printf("cpu: load generator %.0f%%, broker %.0f%%%s%s\n", lg_cpu, broker_cpu,
           R.last_error[0] ? "; last error: " : "", R.last_error);
  }

  printf("RESULT {\"tool\":\"mqttx-loadgen\",\"version\":\"%s\",\"mode\":\"%s\"", LG_VERSION,
         O.connect_only ? "connect-only" : "pubsub");
  printf(",\"pubs\":%d,\"subs\":%d,\"qos\":%d,\"size\":%d", O.pubs, O.subs, O.qos, O.size);
  printf(",\"conn_ok\":%ld,\"conn_fail\":%ld,\"conn_not_started\":%ld", R.conn_ok, R.conn_fail,
         not_started);
  printf(",\"conn_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f}",
         ms(hist_pct(&R.conn, 50)), ms(hist_pct(&R.conn, 90)), ms(hist_pct(&R.conn, 99)),
         ms(R.conn.max));
  printf(",\"sub_ok\":%ld,\"sub_fail\":%ld", R.sub_ok, R.sub_fail);
  if (!O.connect_only) {
    printf(",\"pub_sent\":%llu,\"pub_acked\":%llu,\"pub_unacked\":%llu,\"pub_elapsed_s\":%.3f",
           (unsigned long long)R.pub_sent, (unsigned long long)R.pub_acked,
           (unsigned long long)unacked, pub_elapsed);
    printf(",\"pub_rate\":%.1f", pub_elapsed > 0 ? (double)R.pub_acked / pub_elapsed : 0);
    printf(",\"recv\":%llu,\"recv_expected\":%llu,\"recv_foreign\":%llu,\"recv_rate\":%.1f",
           (unsigned long long)R.recv, (unsigned long long)expected,
           (unsigned long long)R.recv_foreign,
           recv_elapsed > 0 ? (double)R.recv / recv_elapsed : 0);
    if (window > 0)
      printf(",\"recv_window\":%llu,\"recv_window_rate\":%.1f", (unsigned long long)R.recv_window,
             (double)R.recv_window / window);
    const struct hist *h = &R.lat;
    printf(",\"lat_us\":{\"n\":%llu,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
           "\"max\":%.1f,\"mean\":%.1f}",
           (unsigned long long)h->n, us(hist_pct(h, 50)), us(hist_pct(h, 90)),
           us(hist_pct(h, 99)), us(hist_pct(h, 99.9)), us(h->max),
           h->n ? us(h->sum / h->n) : 0);
    print_nullable("lost", lost_n);
    print_nullable("dup", dup_n);
  }
  printf(",\"dropped\":%ld,\"proto_err\":%ld,\"timeout\":%s", R.dropped, R.proto_err,
         timed_out ? "true" : "false");
  printf(",\"lg_cpu_pct\":%.1f", lg_cpu);
  if (O.broker_pid) {
    printf(",\"broker_cpu_pct\":%.1f,\"broker_rss_kb_before\":%ld", broker_cpu, rep->rss_before);
    if (O.connect_only)
      printf(",\"broker_rss_kb_hold\":%ld,\"broker_rss_kb_after\":%ld,\"broker_kb_per_conn\":%.2f",
             rep->rss_hold, rep->rss_after, kb_per_conn);
    printf(",\"broker_rss_kb_end\":%ld", rep->rss_end);
  }
  printf(",\"wall_s\":%.2f", sec(now_ns() - rep->t0));
  if (R.last_error[0]) {
    printf(",\"last_error\":\"");
    for (const char *p = R.last_error; *p; p++)
      if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) putchar(*p);
    printf("\"");
  }
  printf("}\n");
  return failed ? 1 : 0;
}
