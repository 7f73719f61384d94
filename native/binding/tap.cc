// Placeholder until this concept's binding lands.
#include "addon.h"

namespace netplane::binding {

void InitTap(Napi::Env, Napi::Object) {}

}  // namespace netplane::binding
