// cfwd: the plain C baseline for the benchmark harness. It opens two TAP interfaces by
// name and forwards frames between them: poll both fds, read one frame, write it to the
// other side, one read and one write syscall per frame (with a per-wakeup budget so one
// busy side cannot starve the other).
//
//   cfwd [--vnet-hdr] IFA IFB
//       Forward until SIGINT/SIGTERM, then print counters as JSON on stderr.
//       --vnet-hdr opens both TAPs with IFF_VNET_HDR (12-byte header), passes the header
//       through unchanged and enables TUNSETOFFLOAD (csum, TSO4/6, ECN) so checksum-offloaded
//       and GSO frames of up to 64 KiB cross as one read and one write.
//   cfwd --uring [--vnet-hdr] IFA IFB
//       The same through one io_uring (uring_batch.h): per wake-up a batch of reads in one
//       io_uring_enter, then the frames read as a batch of writes in a second one, instead of
//       a read and a write system call per frame. The batch grows to kBudget while every read
//       finds a frame and shrinks to what the last one found (+1) otherwise.
//   cfwd --exec [--vnet-hdr] IFA IFB -- CMD [ARGS...]
//       Open the two TAPs as fds 3 and 4 (blocking, inherited) and exec CMD. The naive Node
//       forwarder uses this when lib/tap.ts cannot open TAPs yet.
//
// The TAPs are not persistent: they disappear when the last fd closes.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "uring_batch.h"

enum { kVnetHdrLen = 12, kBufSize = 65536 + 256, kBudget = 64 };

static volatile sig_atomic_t stop_requested = 0;

static void OnSignal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void Die(const char *what, const char *ifname) {
  fprintf(stderr, "cfwd: %s (%s): %s\n", what, ifname, strerror(errno));
  exit(1);
}

// Open (or create) the TAP `ifname`; cloexec and nonblocking as asked.
static int OpenTap(const char *ifname, int vnet_hdr, int cloexec, int nonblock) {
  if (strlen(ifname) >= IFNAMSIZ) {
    fprintf(stderr, "cfwd: interface name too long: %s\n", ifname);
    exit(2);
  }
  int fd = open("/dev/net/tun", O_RDWR | (cloexec ? O_CLOEXEC : 0) | (nonblock ? O_NONBLOCK : 0));
  if (fd < 0) Die("open /dev/net/tun", ifname);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
  strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) Die("ioctl(TUNSETIFF)", ifname);
  if (vnet_hdr) {
    int len = kVnetHdrLen;
    if (ioctl(fd, TUNSETVNETHDRSZ, &len) < 0) Die("ioctl(TUNSETVNETHDRSZ)", ifname);
    // We can take unchecksummed and GSO frames because our peer (the other TAP) can too.
    unsigned offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    if (ioctl(fd, TUNSETOFFLOAD, offloads) < 0) Die("ioctl(TUNSETOFFLOAD)", ifname);
  }
  return fd;
}

struct Side {
  const char *name;
  int fd;
  uint64_t frames_in, bytes_in;   // read from this TAP
  uint64_t frames_out, bytes_out; // written to this TAP
  uint64_t write_errors;          // frames we read elsewhere and could not write here
};

// Move up to kBudget frames from `from` to `to`. Returns -1 if `from` is dead.
static int Pump(struct Side *from, struct Side *to, unsigned char *buf) {
  for (int i = 0; i < kBudget; i++) {
    ssize_t n = read(from->fd, buf, kBufSize);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return 0;
      fprintf(stderr, "cfwd: read %s: %s\n", from->name, strerror(errno));
      return -1;
    }
    from->frames_in++;
    from->bytes_in += (uint64_t)n;
    ssize_t w = write(to->fd, buf, (size_t)n);
    if (w == n) {
      to->frames_out++;
      to->bytes_out += (uint64_t)n;
    } else {
      to->write_errors++;  // counted, never silent
    }
  }
  return 0;
}

// The --uring batch: one buffer per slot, the result of each slot's read and write.
struct Batch {
  struct UringBatch ring;
  unsigned size;  // reads to submit next time
  int res[kBudget];
  int wres[kBudget];
};

static void StoreRes(void *ctx, uint64_t slot, int res) { ((int *)ctx)[slot] = res; }

// Move up to one batch of frames from `from` to `to` through the ring. -1 if `from` is dead.
static int PumpUring(struct Side *from, struct Side *to, struct Batch *b, unsigned char (*bufs)[kBufSize]) {
  for (unsigned i = 0; i < b->size; i++) UringBatchAdd(&b->ring, IORING_OP_READ, from->fd, bufs[i], kBufSize, i);
  if (UringBatchRun(&b->ring, StoreRes, b->res) < 0) Die("io_uring_enter", from->name);
  unsigned got = 0;
  for (unsigned i = 0; i < b->size; i++) {
    int n = b->res[i];
    if (n < 0) {
      if (n == -EAGAIN || n == -EINTR) continue;
      fprintf(stderr, "cfwd: read %s: %s\n", from->name, strerror(-n));
      return -1;
    }
    from->frames_in++;
    from->bytes_in += (uint64_t)n;
    got++;
    UringBatchAdd(&b->ring, IORING_OP_WRITE, to->fd, bufs[i], (unsigned)n, i);
  }
  if (UringBatchRun(&b->ring, StoreRes, b->wres) < 0) Die("io_uring_enter", to->name);
  for (unsigned i = 0; i < b->size; i++) {
    if (b->res[i] < 0) continue;
    if (b->wres[i] == b->res[i]) {
      to->frames_out++;
      to->bytes_out += (uint64_t)b->wres[i];
    } else {
      to->write_errors++;  // counted, never silent
    }
  }
  unsigned next = got == b->size ? b->size * 2 : got + 1;
  b->size = next > kBudget ? kBudget : next;
  return 0;
}

static int Forward(const char *ifa, const char *ifb, int vnet_hdr, int uring) {
  struct Side a = {ifa, OpenTap(ifa, vnet_hdr, 1, 1), 0, 0, 0, 0, 0};
  struct Side b = {ifb, OpenTap(ifb, vnet_hdr, 1, 1), 0, 0, 0, 0, 0};
  static unsigned char buf[kBufSize];
  static unsigned char bufs[kBudget][kBufSize];
  static struct Batch batch;
  if (uring) {
    if (UringBatchInit(&batch.ring, 2 * kBudget) < 0) Die("io_uring_setup", ifa);
    batch.size = 8;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnSignal;  // no SA_RESTART: poll returns EINTR
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  int status = 0;
  while (!stop_requested) {
    struct pollfd p[2] = {{a.fd, POLLIN, 0}, {b.fd, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      perror("cfwd: poll");
      status = 1;
      break;
    }
    if ((p[0].revents & (POLLERR | POLLHUP | POLLNVAL)) || (p[1].revents & (POLLERR | POLLHUP | POLLNVAL))) {
      fprintf(stderr, "cfwd: a TAP went away\n");
      status = 1;
      break;
    }
    if ((p[0].revents & POLLIN) && (uring ? PumpUring(&a, &b, &batch, bufs) : Pump(&a, &b, buf)) < 0) {
      status = 1;
      break;
    }
    if ((p[1].revents & POLLIN) && (uring ? PumpUring(&b, &a, &batch, bufs) : Pump(&b, &a, buf)) < 0) {
      status = 1;
      break;
    }
  }
  fprintf(stderr,
          "{\"a\":{\"framesIn\":%llu,\"bytesIn\":%llu,\"framesOut\":%llu,\"bytesOut\":%llu,\"writeErrors\":%llu},"
          "\"b\":{\"framesIn\":%llu,\"bytesIn\":%llu,\"framesOut\":%llu,\"bytesOut\":%llu,\"writeErrors\":%llu}}\n",
          (unsigned long long)a.frames_in, (unsigned long long)a.bytes_in, (unsigned long long)a.frames_out,
          (unsigned long long)a.bytes_out, (unsigned long long)a.write_errors, (unsigned long long)b.frames_in,
          (unsigned long long)b.bytes_in, (unsigned long long)b.frames_out, (unsigned long long)b.bytes_out,
          (unsigned long long)b.write_errors);
  close(a.fd);
  close(b.fd);
  return status;
}

static int ExecWithTaps(const char *ifa, const char *ifb, int vnet_hdr, char **cmd) {
  int fa = OpenTap(ifa, vnet_hdr, 0, 0);
  int fb = OpenTap(ifb, vnet_hdr, 0, 0);
  // Park both above the low fds, then place them at 3 and 4 for the child.
  int ha = fcntl(fa, F_DUPFD, 100), hb = fcntl(fb, F_DUPFD, 100);
  if (ha < 0 || hb < 0) Die("fcntl(F_DUPFD)", ifa);
  close(fa);
  close(fb);
  if (dup2(ha, 3) < 0 || dup2(hb, 4) < 0) Die("dup2", ifa);
  close(ha);
  close(hb);
  execvp(cmd[0], cmd);
  Die("exec", cmd[0]);
  return 1;
}

static void Usage(void) {
  fprintf(stderr,
          "usage: cfwd [--vnet-hdr] [--uring] IFA IFB\n"
          "       cfwd --exec [--vnet-hdr] IFA IFB -- CMD [ARGS...]\n");
  exit(2);
}

int main(int argc, char **argv) {
  int vnet_hdr = 0, exec_mode = 0, uring = 0, i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0 && argv[i][2] != '\0'; i++) {
    if (strcmp(argv[i], "--vnet-hdr") == 0) vnet_hdr = 1;
    else if (strcmp(argv[i], "--exec") == 0) exec_mode = 1;
    else if (strcmp(argv[i], "--uring") == 0) uring = 1;
    else {
      fprintf(stderr, "cfwd: unknown option %s\n", argv[i]);
      Usage();
    }
  }
  if (argc - i < 2) Usage();
  const char *ifa = argv[i], *ifb = argv[i + 1];
  if (!exec_mode) {
    if (argc - i != 2) Usage();
    return Forward(ifa, ifb, vnet_hdr, uring);
  }
  if (argc - i < 4 || strcmp(argv[i + 2], "--") != 0) Usage();
  return ExecWithTaps(ifa, ifb, vnet_hdr, &argv[i + 3]);
}
