// Status and Result: how the core reports failure without exceptions across threads.
// A failing step carries errno, the syscall or step that failed ("ioctl(TUNSETIFF)") and
// the human text a user would compare with QEMU's.
#pragma once

#include <cerrno>
#include <string>
#include <utility>

namespace netplane::core {

struct Status {
  int err = 0;             // errno value; 0 = ok unless message is set
  std::string syscall;     // failing step, e.g. "ioctl(TUNSETIFF)"
  std::string message;     // human text, e.g. "could not configure /dev/net/tun (x): ..."

  bool ok() const { return err == 0 && message.empty(); }
  static Status Ok() { return {}; }
  static Status Errno(int err, std::string syscall, std::string message) {
    return Status{err, std::move(syscall), std::move(message)};
  }
  // A validation failure that is not a syscall: EINVAL with the given text.
  static Status Invalid(std::string message) { return Status{EINVAL, "", std::move(message)}; }
};

template <class T>
struct Result {
  T value{};
  Status status;

  bool ok() const { return status.ok(); }
  static Result Of(T v) { Result r; r.value = std::move(v); return r; }
  static Result Fail(Status s) { Result r; r.status = std::move(s); return r; }
};

}  // namespace netplane::core
