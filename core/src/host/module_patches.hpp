// Applies the registered module patches (MODULES_TO_PATCH_FOR_QUANTIZATION) to a model.
#pragma once

#include <string>

namespace qplug {

class Model;
class Registry;

// Replaces, anywhere in the tree, every module whose type has a patch for quant_method. Returns
// how many modules were replaced. Factories run through the guard.
int apply_module_patches(Model& model, const std::string& quant_method, const Registry& registry);

}  // namespace qplug
