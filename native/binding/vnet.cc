// Placeholder until this concept's binding lands.
#include "addon.h"

namespace netplane::binding {

void InitVnet(Napi::Env, Napi::Object) {}

}  // namespace netplane::binding
