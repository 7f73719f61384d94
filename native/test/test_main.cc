// Runner for the native core tests (see test.h).
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>

#include "test.h"

namespace nptest {

static int g_failures_in_case = 0;

std::vector<Case>& Registry() {
  static std::vector<Case> cases;
  return cases;
}

void Fail(const char* file, int line, const std::string& what) {
  ++g_failures_in_case;
  std::cerr << "    " << file << ":" << line << ": " << what << "\n";
}

void Skip(const std::string& reason) {
  const char* ci = std::getenv("CI");
  if (ci && std::strcmp(ci, "true") == 0) {
    Fail("<skip>", 0, "cannot skip under CI=true: " + reason);
    throw std::runtime_error("skip refused under CI");
  }
  throw SkipException{reason};
}

}  // namespace nptest

int main(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : "";
  int passed = 0, failed = 0, skipped = 0;
  for (auto& c : nptest::Registry()) {
    if (c.name.find(filter) == std::string::npos) continue;
    nptest::g_failures_in_case = 0;
    std::string skip_reason;
    try {
      c.fn();
    } catch (const nptest::SkipException& s) {
      skip_reason = s.reason;
    } catch (const std::exception& e) {
      if (nptest::g_failures_in_case == 0) nptest::Fail("<exception>", 0, e.what());
    }
    if (!skip_reason.empty()) {
      ++skipped;
      std::cout << "ok " << c.name << " # SKIP " << skip_reason << std::endl;
    } else if (nptest::g_failures_in_case == 0) {
      ++passed;
      std::cout << "ok " << c.name << std::endl;
    } else {
      ++failed;
      std::cout << "not ok " << c.name << std::endl;
    }
  }
  std::cout << "native: " << passed << " passed, " << failed << " failed, " << skipped << " skipped" << std::endl;
  return failed == 0 ? 0 : 1;
}
