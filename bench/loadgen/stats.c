/* Latency histogram, per-pair sequence tracking, and CPU/RSS sampling from /proc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lg.h"

/* Log-linear buckets: values below 256 exactly, above that 128 steps per power of two (<1%). */
static unsigned bucket_of(uint64_t v) {
  if (v < 256) return (unsigned)v;
  unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 8 */
  unsigned shift = e - 7;
  unsigned idx = shift * 128 + (unsigned)(v >> shift);
  return idx < 64 * 128 ? idx : 64 * 128 - 1;
}

static uint64_t bucket_mid(unsigned idx) {
  if (idx < 256) return idx;
  unsigned shift = idx / 128 - 1;
  uint64_t mant = 128 + idx % 128;
  return (mant << shift) + ((1ull << shift) >> 1);
}

void hist_add(struct hist *h, uint64_t v) {
  h->bucket[bucket_of(v)]++;
  h->n++;
  h->sum += v;
  if (v > h->max) h->max = v;
}

uint64_t hist_pct(const struct hist *h, double p) {
  if (!h->n) return 0;
  uint64_t want = (uint64_t)(p / 100.0 * (double)h->n + 0.5);
  if (want < 1) want = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < 64 * 128; i++) {
    seen += h->bucket[i];
    if (seen >= want) {
      uint64_t v = bucket_mid(i);
      return v > h->max ? h->max : v;
    }
  }
  return h->max;
}

struct pair {
  uint8_t *bits;
  size_t bytes;
  uint64_t distinct;
};

struct track {
  int subs, pubs;
  size_t used, cap;
  int enabled;
  struct pair *pairs;
};

struct track *track_new(int subs, int pubs, size_t cap_bytes) {
  struct track *t = calloc(1, sizeof *t);
  t->subs = subs;
  t->pubs = pubs;
  t->cap = cap_bytes;
  t->enabled = 1;
  t->pairs = calloc((size_t)subs * (size_t)pubs + 1, sizeof *t->pairs);
  return t;
}

int track_enabled(const struct track *t) { return t->enabled; }

int track_seen(struct track *t, int sub, int pub, uint64_t seq) {
  if (!t->enabled) return -1;
  struct pair *p = &t->pairs[(size_t)sub * (size_t)t->pubs + (size_t)pub];
  size_t byte = (size_t)(seq >> 3);
  if (byte >= p->bytes) {
    size_t n = p->bytes ? p->bytes : 1024;
    while (n <= byte) n *= 2;
    if (t->used + (n - p->bytes) > t->cap) {
      t->enabled = 0; /* past --track-mem: report null rather than guess */
      return -1;
    }
    uint8_t *bits = realloc(p->bits, n);
    if (!bits) {
      t->enabled = 0;
      return -1;
    }
    memset(bits + p->bytes, 0, n - p->bytes);
    t->used += n - p->bytes;
    p->bits = bits;
    p->bytes = n;
  }
  uint8_t mask = (uint8_t)(1u << (seq & 7));
  if (p->bits[byte] & mask) return 0;
  p->bits[byte] |= mask;
  p->distinct++;
  return 1;
}

uint64_t track_distinct(struct track *t, int sub, int pub) {
  return t->pairs[(size_t)sub * (size_t)t->pubs + (size_t)pub].distinct;
}

static long broker_cpu_ticks(void) {
  if (!O.broker_pid) return 0;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", O.broker_pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the command name may contain spaces */
  if (!p) return 0;
  unsigned long utime = 0, stime = 0;
  /* fields after ")": state(3) ... utime(14) stime(15) */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
    return 0;
  return (long)(utime + stime);
}

void usage_sample(struct usage *u) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  u->t = now_ns();
  u->lg_cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  u->broker_ticks = broker_cpu_ticks();
}

long broker_rss_kb(void) {
  if (!O.broker_pid) return -1;
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", O.broker_pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
  fclose(f);
  return kb;
}
