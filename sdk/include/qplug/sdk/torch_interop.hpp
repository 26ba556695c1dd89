// Conversions between qplug's LibTorch-free types and LibTorch's.
#pragma once

#include <string>
#include <vector>

#include <c10/core/ScalarType.h>

#include "qplug/sdk/dtype.hpp"

namespace qplug {

c10::ScalarType to_scalar_type(DType dtype);
// Throws UnsupportedError for a torch dtype safetensors cannot store (complex, quantized, ...).
DType from_scalar_type(c10::ScalarType type);
// "[2, 3]"
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace qplug
