// Element types as safetensors names them, without pulling in LibTorch. Conversions to and from
// torch's ScalarType live in <qplug/sdk/torch_interop.hpp>.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace qplug {

enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool };

// Bytes per element.
int64_t dtype_size(DType dtype);
// The safetensors spelling: "F32", "BF16", "BOOL", ...
const char* safetensors_name(DType dtype);
std::optional<DType> dtype_from_safetensors_name(std::string_view name);
// The torch spelling that config.json uses: "float32", "bfloat16", "int8", "uint8", "bool", ...
const char* torch_name(DType dtype);
// Accepts "float32", "torch.float32", "fp32", "float", "bfloat16", "bf16", "float16", "fp16",
// "half", and the other integer names.
std::optional<DType> dtype_from_torch_name(std::string_view name);
bool is_floating(DType dtype);

}  // namespace qplug
