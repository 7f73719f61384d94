// Status and Result: how the core reports failure without exceptions across threads.
// A failing step carries its kind, errno, the syscall or step that failed
// ("ioctl(TUNSETIFF)") and the human text a user would compare with QEMU's.
#pragma once

#include <cerrno>
#include <string>
#include <utility>

namespace netplane::core {

// What kind of failure, so callers (the binding's error codes) never parse the text.
enum class StatusCode {
  kOk,
  kSystem,        // a system call failed: err is its errno
  kInvalid,       // a bad argument or request (err EINVAL)
  kNotFound,      // no such object (a net client handle)
  kInUse,         // the name / handle / peer slot is taken
  kClosed,        // the object was closed or stopped
  kInvalidInput,  // untrusted input (a guest memory table, a ring layout) failed validation
};

struct Status {
  StatusCode code = StatusCode::kOk;
  int err = 0;          // errno value (EINVAL for every kind but kSystem)
  std::string syscall;  // failing step, e.g. "ioctl(TUNSETIFF)"
  std::string message;  // human text, e.g. "could not configure /dev/net/tun (x): ..."

  bool ok() const { return code == StatusCode::kOk; }
  static Status Ok() { return {}; }
  static Status Errno(int err, std::string syscall, std::string message) {
    return Status{StatusCode::kSystem, err, std::move(syscall), std::move(message)};
  }
  // A validation failure that is not a syscall: EINVAL with the given text.
  static Status Invalid(std::string message) { return Of(StatusCode::kInvalid, std::move(message)); }
  static Status NotFound(std::string message) { return Of(StatusCode::kNotFound, std::move(message)); }
  static Status InUse(std::string message) { return Of(StatusCode::kInUse, std::move(message)); }
  static Status Closed(std::string message) { return Of(StatusCode::kClosed, std::move(message)); }
  static Status InvalidInput(std::string message) { return Of(StatusCode::kInvalidInput, std::move(message)); }

 private:
  static Status Of(StatusCode code, std::string message) { return Status{code, EINVAL, "", std::move(message)}; }
};

template <class T>
struct Result {
  T value{};
  Status status;

  bool ok() const { return status.ok(); }
  static Result Of(T v) {
    Result r;
    r.value = std::move(v);
    return r;
  }
  static Result Fail(Status s) {
    Result r;
    r.status = std::move(s);
    return r;
  }
};

}  // namespace netplane::core
