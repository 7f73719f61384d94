#include "base/debug_check.h"

#include <cstdio>
#include <cstdlib>

namespace netplane::core {

void DcheckFailed(const char* what, const char* file, int line, const char* func) {
  std::fprintf(stderr, "netplane: debug check failed: %s (%s:%d, %s)\n", what, file, line, func);
  std::abort();
}

}  // namespace netplane::core
