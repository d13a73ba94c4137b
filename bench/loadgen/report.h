/* What a run measured, and the RESULT line that prints it. */
#ifndef REPORT_H
#define REPORT_H

#include "lg.h"

struct report {
  uint64_t t0;
  long rss_before, rss_hold, rss_after, rss_end;
  struct usage u0, u1; /* the active window: publishing start to the last progress */
  int *matches;        /* per publisher: subscribers whose filter matches its topic */
};

void report_matches(struct report *rep);
uint64_t report_expected(const struct report *rep);
int report_print(struct report *rep, int timed_out); /* returns the exit status */

#endif
