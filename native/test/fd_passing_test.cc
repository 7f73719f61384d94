// SCM_RIGHTS over a socketpair: fds arrive close-on-exec with their bytes, unclaimed fds
// are closed with their chunk, EOF and EAGAIN are told apart, and bad arguments fail.
#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "base/fd_pair.h"
#include "fd_count.h"
#include "io/fd_passing.h"
#include "test.h"

using netplane::core::DupCloexec;
using netplane::core::kMaxFdsPerMessage;
using netplane::core::MakeSocketPair;
using netplane::core::RecvWithFds;
using netplane::core::SendWithFds;
using netplane::core::UniqueFd;

namespace {

using nptest::OpenFdCount;

// Same open file (device and inode) behind two fds.
bool SameFile(int a, int b) {
  struct stat sa, sb;
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

}  // namespace

TEST(FdPassing, FdsArriveWithTheirBytesAndCloseOnExec) {
  auto pair = MakeSocketPair();
  REQUIRE(pair.ok());
  int pipe_fds[2];
  REQUIRE(pipe2(pipe_fds, O_CLOEXEC) == 0);
  UniqueFd r(pipe_fds[0]), w(pipe_fds[1]);

  int send[2] = {r.get(), w.get()};
  auto sent = SendWithFds(pair.value->first.get(), "hello", 5, send, 2);
  REQUIRE(sent.ok());
  CHECK_EQ(sent.value, 5u);

  char buf[64];
  auto got = RecvWithFds(pair.value->second.get(), buf, sizeof(buf));
  REQUIRE(got.ok());
  CHECK_EQ(got.value.bytes, 5u);
  CHECK(std::string(buf, 5) == "hello");
  CHECK(!got.value.eof);
  CHECK(!got.value.fds_truncated);
  REQUIRE(got.value.fds.size() == 2u);
  CHECK(SameFile(got.value.fds[0].get(), r.get()));
  CHECK(SameFile(got.value.fds[1].get(), w.get()));
  for (auto& fd : got.value.fds) CHECK((fcntl(fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST(FdPassing, UnclaimedFdsCloseWithTheirChunk) {
  auto pair = MakeSocketPair();
  REQUIRE(pair.ok());
  int before = OpenFdCount();
  for (int round = 0; round < 50; ++round) {
    int fds[3] = {0, 1, 2};
    REQUIRE(SendWithFds(pair.value->first.get(), "x", 1, fds, 3).ok());
    char buf[8];
    auto got = RecvWithFds(pair.value->second.get(), buf, sizeof(buf));
    REQUIRE(got.ok());
    CHECK_EQ(got.value.fds.size(), 3u);
    // got goes out of scope here: its fds close.
  }
  CHECK_EQ(OpenFdCount(), before);
}

TEST(FdPassing, MaximumFdCountPasses) {
  auto pair = MakeSocketPair();
  REQUIRE(pair.ok());
  std::vector<int> many(kMaxFdsPerMessage, 0);  // stdin, 253 times: each arrives as its own fd
  REQUIRE(SendWithFds(pair.value->first.get(), "m", 1, many.data(), many.size()).ok());
  char buf[8];
  auto got = RecvWithFds(pair.value->second.get(), buf, sizeof(buf));
  REQUIRE(got.ok());
  CHECK_EQ(got.value.fds.size(), kMaxFdsPerMessage);
  CHECK(!got.value.fds_truncated);
}

TEST(FdPassing, PlainBytesCarryNoFds) {
  auto pair = MakeSocketPair();
  REQUIRE(pair.ok());
  REQUIRE(write(pair.value->first.get(), "abc", 3) == 3);
  char buf[8];
  auto got = RecvWithFds(pair.value->second.get(), buf, sizeof(buf));
  REQUIRE(got.ok());
  CHECK_EQ(got.value.bytes, 3u);
  CHECK(got.value.fds.empty());
}

TEST(FdPassing, WouldBlockAndEofAreToldApart) {
  auto pair = MakeSocketPair();
  REQUIRE(pair.ok());
  char buf[8];
  auto empty = RecvWithFds(pair.value->second.get(), buf, sizeof(buf));
  REQUIRE(empty.ok());
  CHECK(empty.value.would_block);
  CHECK(!empty.value.eof);
  pair.value->first.Reset();
  auto eof = RecvWithFds(pair.value->second.get(), buf, sizeof(buf));
  REQUIRE(eof.ok());
  CHECK(eof.value.eof);
  CHECK(!eof.value.would_block);
}

TEST(FdPassing, BadArgumentsFailWithoutSending) {
  auto pair = MakeSocketPair();
  REQUIRE(pair.ok());
  int bad = -1;
  CHECK(!SendWithFds(pair.value->first.get(), "x", 1, &bad, 1).ok());
  std::vector<int> too_many(kMaxFdsPerMessage + 1, 0);
  auto r = SendWithFds(pair.value->first.get(), "x", 1, too_many.data(), too_many.size());
  CHECK(!r.ok());
  CHECK(r.status.message.find("at most 253") != std::string::npos);
  CHECK(!SendWithFds(pair.value->first.get(), "", 0, nullptr, 0).ok());
  char buf[8];
  auto none = RecvWithFds(pair.value->second.get(), buf, sizeof(buf));
  REQUIRE(none.ok());
  CHECK(none.value.would_block);  // nothing was sent
  auto closed = RecvWithFds(-1, buf, sizeof(buf));
  CHECK(!closed.ok());
  CHECK_EQ(closed.status.err, EBADF);
  CHECK(closed.status.syscall == "recvmsg");
}

TEST(FdPassing, DupCloexecKeepsTheOriginal) {
  int before = OpenFdCount();
  {
    auto d = DupCloexec(1);
    REQUIRE(d.ok());
    CHECK(SameFile(d.value.get(), 1));
    CHECK((fcntl(d.value.get(), F_GETFD) & FD_CLOEXEC) != 0);
  }
  CHECK_EQ(OpenFdCount(), before);
  CHECK(!DupCloexec(-1).ok());
  auto bad = DupCloexec(1 << 20);
  CHECK(!bad.ok());
  CHECK_EQ(bad.status.err, EBADF);
}
