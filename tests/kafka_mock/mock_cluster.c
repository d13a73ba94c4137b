/*
 * A Kafka cluster for tests: librdkafka's mock cluster (a real Kafka protocol
 * server in-process). Usage: mock_cluster [--brokers N] TOPIC[:PARTITIONS] ...
 * Prints the bootstrap servers on the first line of stdout, then reads commands
 * on stdin, one per line: "down" / "up" (every broker refuses / accepts
 * connections again, to simulate an outage). Exits on SIGTERM, SIGINT or
 * when stdin closes, so a dead test never leaves it running.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop = 0;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

int main(int argc, char **argv) {
  int brokers = 1;
  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  /* The handle only hosts the mock; keep its own logging quiet. */
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!rk) { fprintf(stderr, "rd_kafka_new: %s\n", errstr); return 1; }
  int first = 1;
  if (argc > 2 && strcmp(argv[1], "--brokers") == 0) { brokers = atoi(argv[2]); first = 3; }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mc) { fprintf(stderr, "rd_kafka_mock_cluster_new failed\n"); return 1; }
  for (int i = first; i < argc; i++) {
    char name[256];
    int partitions = 1;
    snprintf(name, sizeof name, "%s", argv[i]);
    char *colon = strrchr(name, ':');
    if (colon) { *colon = 0; partitions = atoi(colon + 1); }
    if (rd_kafka_mock_topic_create(mc, name, partitions, 1)) {
      fprintf(stderr, "cannot create topic %s\n", name);
      return 1;
    }
  }
  printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
  fflush(stdout);
  char line[64];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: a signal interrupts fgets */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  while (!stop && fgets(line, sizeof line, stdin)) {
    int up = strncmp(line, "up", 2) == 0;
    int down = strncmp(line, "down", 4) == 0;
    for (int b = 1; b <= brokers && (up || down); b++) {
      if (up) rd_kafka_mock_broker_set_up(mc, b);
      else rd_kafka_mock_broker_set_down(mc, b);
    }
    printf(up || down ? "ok\n" : "unknown command\n");
    fflush(stdout);
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
