// The number of fds this process has open (for leak checks in the native tests).
#pragma once

#include <dirent.h>

namespace nptest {

inline int OpenFdCount() {
  int n = 0;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the DIR's own fd
}

}  // namespace nptest
