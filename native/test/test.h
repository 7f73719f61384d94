// A minimal test harness for the native core: TEST(suite, name) registers a case, CHECK*
// record failures with file:line. `native_tests [filter]` runs the cases whose
// "suite.name" contains filter and prints one TAP-like line per case plus a summary.
#pragma once

#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace nptest {

struct Case {
  std::string name;
  std::function<void()> fn;
};
std::vector<Case>& Registry();
void Fail(const char* file, int line, const std::string& what);
// Skip the running case with a reason (e.g. no CAP_NET_ADMIN); under CI=true it fails.
void Skip(const std::string& reason);
struct Registrar {
  Registrar(const char* suite, const char* name, std::function<void()> fn) {
    Registry().push_back({std::string(suite) + "." + name, std::move(fn)});
  }
};
struct SkipException {
  std::string reason;
};

}  // namespace nptest

#define NP_CONCAT2(a, b) a##b
#define NP_CONCAT(a, b) NP_CONCAT2(a, b)
#define TEST(suite, name)                                                         \
  static void NP_CONCAT(test_, NP_CONCAT(suite, NP_CONCAT(_, name)))();           \
  static nptest::Registrar NP_CONCAT(reg_, NP_CONCAT(suite, NP_CONCAT(_, name)))( \
      #suite, #name, NP_CONCAT(test_, NP_CONCAT(suite, NP_CONCAT(_, name))));     \
  static void NP_CONCAT(test_, NP_CONCAT(suite, NP_CONCAT(_, name)))()

#define CHECK(cond)                                                    \
  do {                                                                 \
    if (!(cond)) nptest::Fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define CHECK_EQ(a, b)                                                   \
  do {                                                                   \
    auto&& np_a = (a);                                                   \
    auto&& np_b = (b);                                                   \
    if (!(np_a == np_b)) {                                               \
      std::ostringstream np_os;                                          \
      np_os << "CHECK_EQ(" #a ", " #b "): " << +np_a << " != " << +np_b; \
      nptest::Fail(__FILE__, __LINE__, np_os.str());                     \
    }                                                                    \
  } while (0)

// Fail and stop the case (throws).
#define REQUIRE(cond)                                         \
  do {                                                        \
    if (!(cond)) {                                            \
      nptest::Fail(__FILE__, __LINE__, "REQUIRE(" #cond ")"); \
      throw std::runtime_error("requirement failed");         \
    }                                                         \
  } while (0)
