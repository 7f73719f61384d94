// udprtt: UDP round-trip latency for the benchmark harness.
//
//   udprtt server BIND_IP PORT
//       Echo every datagram back to its sender until SIGINT/SIGTERM.
//   udprtt sink BIND_IP PORT
//       Hold a bound UDP socket with a tiny receive buffer that is never read, so a flood
//       to PORT is dropped cheaply at the socket (no ICMP port-unreachable path).
//   udprtt client SERVER_IP PORT COUNT [WARMUP] [TIMEOUT_MS] [DEADLINE_S]
//       Send COUNT+WARMUP pings one at a time, each waiting for its echo (or TIMEOUT_MS),
//       stop early at DEADLINE_S, and print JSON: percentiles of the COUNT measured round
//       trips in microseconds and how many were lost.
//   udprtt pair NS_B SERVER_IP PORT COUNT [WARMUP] [TIMEOUT_MS] [DEADLINE_S]
//       The client, and the server too: its socket is bound to SERVER_IP in the network
//       namespace NS_B (/run/netns/NS_B), and this one thread answers it while it waits for
//       each echo, never sleeping. No end of the ping-pong wakes from a sleep, so a round trip
//       is the path between the namespaces alone (the forwarder and the kernel), not the
//       ends' wake-ups. Keep it off the forwarder's CPU: it keeps its own CPU busy.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kPayload = 32 };

static uint64_t NowNs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct sockaddr_in Addr(const char *ip, const char *port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)atoi(port));
  if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
    fprintf(stderr, "udprtt: bad IPv4 address %s\n", ip);
    exit(2);
  }
  return sa;
}

static int Server(const char *ip, const char *port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = Addr(ip, port);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    perror("udprtt server: bind");
    return 1;
  }
  printf("listening\n");
  fflush(stdout);
  unsigned char buf[2048];
  for (;;) {
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("udprtt server: recvfrom");
      return 1;
    }
    sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
  }
}

static int Sink(const char *ip, const char *port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = Addr(ip, port);
  int small = 1;  // the kernel rounds it up to its minimum
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) < 0 ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    perror("udprtt sink: bind");
    return 1;
  }
  printf("listening\n");
  fflush(stdout);
  for (;;) pause();
}

static int CompareU64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double Percentile(const uint64_t *sorted, size_t n, double p) {
  size_t i = (size_t)(p * (double)(n - 1) + 0.5);
  return (double)sorted[i] / 1000.0;
}

// The echo of ping seq on fd by deadline_ns: 1 when it came, 0 when not. Blocking (fd's
// SO_RCVTIMEO bounds the wait) unless echo_fd is the pair mode's server socket: then this
// thread answers the pings arriving there while it waits, and never sleeps.
static int AwaitEcho(int fd, long seq, uint64_t deadline_ns, int echo_fd) {
  unsigned char in[2048];
  for (;;) {
    if (echo_fd >= 0) {
      struct sockaddr_in from;
      socklen_t fl = sizeof from;
      ssize_t m = recvfrom(echo_fd, in, sizeof in, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
      if (m > 0) sendto(echo_fd, in, (size_t)m, 0, (struct sockaddr *)&from, fl);
    }
    ssize_t n = recv(fd, in, sizeof in, echo_fd >= 0 ? MSG_DONTWAIT : 0);
    if (n < 0) {
      if (echo_fd < 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || NowNs() >= deadline_ns) return 0;
      continue;
    }
    long echoed;
    memcpy(&echoed, in, sizeof echoed);
    if (n == kPayload && echoed == seq) return 1;  // else a late echo of an earlier ping
  }
}

static int Client(const char *ip, const char *port, long count, long warmup, long timeout_ms, long deadline_s,
                  int echo_fd) {
  if (count <= 0 || warmup < 0 || timeout_ms <= 0 || deadline_s <= 0) {
    fprintf(stderr, "udprtt: COUNT, TIMEOUT_MS and DEADLINE_S must be positive, WARMUP >= 0\n");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = Addr(ip, port);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    perror("udprtt client: connect");
    return 1;
  }
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  uint64_t *rtt = calloc((size_t)count, sizeof *rtt);
  if (!rtt) return 1;
  size_t got = 0;
  long lost = 0, sent = 0;
  uint64_t deadline = NowNs() + (uint64_t)deadline_s * 1000000000ull;
  for (long seq = 0; seq < count + warmup && NowNs() < deadline; seq++) {
    unsigned char out[kPayload] = {0};
    memcpy(out, &seq, sizeof seq);
    uint64_t t0 = NowNs();
    if (send(fd, out, sizeof out, 0) < 0) {
      if (seq >= warmup) lost++;
      continue;
    }
    if (seq >= warmup) sent++;
    int echoed = AwaitEcho(fd, seq, t0 + (uint64_t)timeout_ms * 1000000ull, echo_fd);
    if (seq < warmup) continue;
    if (echoed)
      rtt[got++] = NowNs() - t0;
    else
      lost++;
  }
  if (got == 0) {
    printf("{\"count\":0,\"sent\":%ld,\"lost\":%ld}\n", sent, lost);
    return 1;
  }
  qsort(rtt, got, sizeof *rtt, CompareU64);
  double sum = 0;
  for (size_t i = 0; i < got; i++) sum += (double)rtt[i] / 1000.0;
  printf("{\"count\":%zu,\"sent\":%ld,\"lost\":%ld,\"minUs\":%.2f,\"p50Us\":%.2f,\"p90Us\":%.2f,"
         "\"p99Us\":%.2f,\"p999Us\":%.2f,\"maxUs\":%.2f,\"meanUs\":%.2f}\n",
         got, sent, lost, Percentile(rtt, got, 0), Percentile(rtt, got, 0.5), Percentile(rtt, got, 0.9),
         Percentile(rtt, got, 0.99), Percentile(rtt, got, 0.999), Percentile(rtt, got, 1), sum / (double)got);
  free(rtt);
  return 0;
}

// The pair mode's server socket, bound in network namespace ns; the thread returns to its own.
static int EchoSocketIn(const char *ns, const char *ip, const char *port) {
  char path[256];
  snprintf(path, sizeof path, "/run/netns/%s", ns);
  int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) != 0) {
    perror("udprtt pair: setns");
    exit(1);
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = Addr(ip, port);
  int bound = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  int err = errno;
  if (setns(self, CLONE_NEWNET) != 0) {
    perror("udprtt pair: setns back");
    exit(1);
  }
  close(self);
  close(target);
  if (!bound) {
    fprintf(stderr, "udprtt pair: bind %s:%s in %s: %s\n", ip, port, ns, strerror(err));
    exit(1);
  }
  return fd;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "server") == 0) return Server(argv[2], argv[3]);
  if (argc == 4 && strcmp(argv[1], "sink") == 0) return Sink(argv[2], argv[3]);
  if (argc >= 5 && argc <= 8 && strcmp(argv[1], "client") == 0) {
    return Client(argv[2], argv[3], atol(argv[4]), argc > 5 ? atol(argv[5]) : 100,
                  argc > 6 ? atol(argv[6]) : 200, argc > 7 ? atol(argv[7]) : 30, -1);
  }
  if (argc >= 6 && argc <= 9 && strcmp(argv[1], "pair") == 0) {
    int echo_fd = EchoSocketIn(argv[2], argv[3], argv[4]);
    return Client(argv[3], argv[4], atol(argv[5]), argc > 6 ? atol(argv[6]) : 100,
                  argc > 7 ? atol(argv[7]) : 200, argc > 8 ? atol(argv[8]) : 30, echo_fd);
  }
  fprintf(stderr,
          "usage: udprtt server BIND_IP PORT\n"
          "       udprtt sink BIND_IP PORT\n"
          "       udprtt client SERVER_IP PORT COUNT [WARMUP] [TIMEOUT_MS] [DEADLINE_S]\n"
          "       udprtt pair NS_B SERVER_IP PORT COUNT [WARMUP] [TIMEOUT_MS] [DEADLINE_S]\n");
  return 2;
}
