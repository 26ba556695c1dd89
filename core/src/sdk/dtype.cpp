#include "qplug/sdk/dtype.hpp"

#include <algorithm>
#include <cctype>

namespace qplug {

namespace {
struct DTypeNames {
  DType dtype;
  int64_t size;
  const char* safetensors;
  const char* torch;
};
constexpr DTypeNames kNames[] = {
    {DType::F64, 8, "F64", "float64"}, {DType::F32, 4, "F32", "float32"},
    {DType::F16, 2, "F16", "float16"}, {DType::BF16, 2, "BF16", "bfloat16"},
    {DType::I64, 8, "I64", "int64"},   {DType::I32, 4, "I32", "int32"},
    {DType::I16, 2, "I16", "int16"},   {DType::I8, 1, "I8", "int8"},
    {DType::U8, 1, "U8", "uint8"},     {DType::Bool, 1, "BOOL", "bool"},
};
const DTypeNames& names_of(DType dtype) {
  for (const auto& n : kNames)
    if (n.dtype == dtype) return n;
  return kNames[1];  // unreachable: every enumerator is listed
}
}  // namespace

int64_t dtype_size(DType dtype) {
  return names_of(dtype).size;
}
const char* safetensors_name(DType dtype) {
  return names_of(dtype).safetensors;
}
const char* torch_name(DType dtype) {
  return names_of(dtype).torch;
}

std::optional<DType> dtype_from_safetensors_name(std::string_view name) {
  for (const auto& n : kNames)
    if (name == n.safetensors) return n.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_torch_name(std::string_view name) {
  std::string s(name);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s.rfind("torch.", 0) == 0) s = s.substr(6);
  for (const auto& n : kNames)
    if (s == n.torch) return n.dtype;
  if (s == "float" || s == "fp32") return DType::F32;
  if (s == "half" || s == "fp16") return DType::F16;
  if (s == "bf16") return DType::BF16;
  if (s == "double" || s == "fp64") return DType::F64;
  if (s == "long") return DType::I64;
  if (s == "int") return DType::I32;
  return std::nullopt;
}

bool is_floating(DType dtype) {
  return dtype == DType::F64 || dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

}  // namespace qplug
