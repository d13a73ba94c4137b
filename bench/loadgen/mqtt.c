/* MQTT 3.1.1 packets, written straight into a client's output buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lg.h"

void out_reserve(struct client *c, size_t n) {
  if (c->out_off > 0 && c->out_off == c->out_len) c->out_off = c->out_len = 0;
  if (c->out_len + n <= c->out_cap) return;
  if (c->out_off > 0) { /* slide the unsent tail to the front first */
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
    if (c->out_len + n <= c->out_cap) return;
  }
  size_t cap = c->out_cap ? c->out_cap : 256;
  while (cap < c->out_len + n) cap *= 2;
  c->out = realloc(c->out, cap);
  if (!c->out) {
    perror("realloc");
    exit(3);
  }
  c->out_cap = cap;
}

static uint8_t *put_header(uint8_t *p, uint8_t first, size_t remaining) {
  *p++ = first;
  do {
    uint8_t b = remaining % 128;
    remaining /= 128;
    *p++ = b | (remaining ? 0x80 : 0);
  } while (remaining);
  return p;
}

static uint8_t *put_u16(uint8_t *p, unsigned v) {
  *p++ = (uint8_t)(v >> 8);
  *p++ = (uint8_t)v;
  return p;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t n) {
  p = put_u16(p, (unsigned)n);
  memcpy(p, s, n);
  return p + n;
}

static uint8_t *tail(struct client *c) { return c->out + c->out_len; }

void mqtt_connect(struct client *c, const char *client_id, int keepalive, int clean) {
  size_t id = strlen(client_id);
  size_t body = 10 + 2 + id;
  out_reserve(c, body + 5);
  uint8_t *p = put_header(tail(c), 0x10, body);
  p = put_str(p, "MQTT", 4);
  *p++ = 4;    /* protocol level 3.1.1 */
  *p++ = clean ? 0x02 : 0; /* clean session */
  p = put_u16(p, (unsigned)keepalive);
  p = put_str(p, client_id, id);
  c->out_len = (size_t)(p - c->out);
}

void mqtt_subscribe(struct client *c, uint16_t pid, const char *filter, int qos) {
  size_t n = strlen(filter);
  size_t body = 2 + 2 + n + 1;
  out_reserve(c, body + 5);
  uint8_t *p = put_header(tail(c), 0x82, body);
  p = put_u16(p, pid);
  p = put_str(p, filter, n);
  *p++ = (uint8_t)qos;
  c->out_len = (size_t)(p - c->out);
}

void mqtt_publish(struct client *c, int qos, uint16_t pid, const uint8_t *payload, size_t len) {
  size_t body = 2 + c->topic_len + (qos ? 2 : 0) + len;
  out_reserve(c, body + 5);
  uint8_t *p = put_header(tail(c), (uint8_t)(0x30 | (qos << 1)), body);
  p = put_str(p, c->topic, c->topic_len);
  if (qos) p = put_u16(p, pid);
  memcpy(p, payload, len);
  c->out_len = (size_t)(p + len - c->out);
}

void mqtt_ack(struct client *c, uint8_t type, uint16_t pid) {
  out_reserve(c, 4);
  uint8_t *p = tail(c);
  p[0] = type;
  p[1] = 2;
  put_u16(p + 2, pid);
  c->out_len += 4;
}

void mqtt_short(struct client *c, uint8_t type) {
  out_reserve(c, 2);
  c->out[c->out_len++] = type;
  c->out[c->out_len++] = 0;
}

long mqtt_frame(const uint8_t *buf, size_t len, size_t *body_at) {
  size_t remaining = 0, mul = 1, i = 1;
  for (;; i++) {
    if (i >= len) return 0;
    if (i > 4) return -1; /* more than four length bytes: malformed */
    remaining += (size_t)(buf[i] & 0x7f) * mul;
    mul *= 128;
    if (!(buf[i] & 0x80)) break;
  }
  *body_at = i + 1;
  if (len < i + 1 + remaining) return 0;
  return (long)(i + 1 + remaining);
}

/* MQTT matching of one topic against one filter (`+` one level, `#` the rest). */
int topic_matches(const char *f, const char *t) {
  if ((*f == '+' || *f == '#') && *t == '$') return 0; /* [MQTT-4.7.2-1] */
  for (;;) {
    if (*f == '#') return 1;
    if (*f == '+') {
      while (*t && *t != '/') t++;
      f++;
    } else {
      while (*f && *f != '/' && *f == *t) f++, t++;
      if ((*f && *f != '/') || (*t && *t != '/')) return 0;
    }
    if (!*f && !*t) return 1;
    if (*f != '/' || *t != '/') {
      /* "a/#" also matches "a" */
      return !*t && f[0] == '/' && f[1] == '#' && !f[2];
    }
    f++, t++;
  }
}

/* pattern with %i replaced by idx and %% by %. */
void expand_index(char *dst, size_t cap, const char *pattern, int idx) {
  size_t n = 0;
  for (const char *p = pattern; *p && n + 12 < cap; p++) {
    if (p[0] == '%' && p[1] == 'i') {
      n += (size_t)snprintf(dst + n, cap - n, "%d", idx);
      p++;
    } else if (p[0] == '%' && p[1] == '%') {
      dst[n++] = '%';
      p++;
    } else {
      dst[n++] = *p;
    }
  }
  dst[n] = 0;
}
