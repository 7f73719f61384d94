// Name the calling thread (visible in top -H, /proc/<pid>/task/<tid>/comm); the kernel
// keeps 15 characters.
#pragma once

#include <string>

namespace netplane::core {

void SetThreadName(const std::string& name);
std::string CurrentThreadName();

}  // namespace netplane::core
