// FUZZ_ASSERT: an invariant of a fuzz target; a violation traps, so libFuzzer keeps the input.
#pragma once

#define FUZZ_ASSERT(c)          \
  do {                          \
    if (!(c)) __builtin_trap(); \
  } while (0)
