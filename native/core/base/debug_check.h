// Debug-build checks of the threading rules that otherwise live only in comments. With
// NETPLANE_DEBUG defined (node-gyp's Debug configuration, and the cmake build of the native
// tests) a failed check prints where and aborts; otherwise the checks compile to nothing.
#pragma once

namespace netplane::core {

[[noreturn]] void DcheckFailed(const char* what, const char* file, int line, const char* func);

}  // namespace netplane::core

#ifdef NETPLANE_DEBUG
// The caller runs on the home thread of `ctx` (an AioContext*): a net client and its queue
// are touched only by the thread of the context they live in. A null ctx (a NetContext with
// no loop, as unit tests drive clients by hand) has no home to check.
#define NP_DCHECK_HOME(ctx)                                                                            \
  do {                                                                                                 \
    if ((ctx) && !(ctx)->InHomeThread())                                                               \
      ::netplane::core::DcheckFailed("not on the home thread of " #ctx, __FILE__, __LINE__, __func__); \
  } while (0)
#else
#define NP_DCHECK_HOME(ctx) ((void)0)
#endif
