#include "bnb_tensors.hpp"

namespace qplug::bnb {

namespace {
int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
const char* type_name(QuantType t) {
  return t == QuantType::NF4 ? "nf4" : "fp4";
}
}  // namespace

std::string quant_state_json(const FourBitSettings& s, DType dtype, int64_t rows, int64_t cols,
                             double nested_offset) {
  Value state = Value::map();
  state.set("quant_type", type_name(s.quant_type));
  state.set("blocksize", s.blocksize);
  state.set("dtype", torch_name(dtype));
  state.set("shape", Value::list({Value(rows), Value(cols)}));
  if (s.double_quant) {
    state.set("nested_blocksize", 256);
    state.set("nested_dtype", "float32");
    state.set("nested_offset", nested_offset);
  }
  return to_json(state);
}

std::vector<TensorSpec> four_bit_tensor_specs(const LinearShape& shape, const FourBitSettings& s,
                                              DType dtype) {
  const int64_t n = shape.in_features * shape.out_features;
  const int64_t blocks = ceil_div(n, s.blocksize);
  std::vector<TensorSpec> specs;
  specs.push_back({"weight", {ceil_div(n, 2) / dtype_size(s.quant_storage), 1}, s.quant_storage});
  specs.push_back({"weight.absmax", {blocks}, s.double_quant ? DType::U8 : DType::F32});
  specs.push_back({"weight.quant_map", {16}, DType::F32});
  if (s.double_quant) {
    specs.push_back({"weight.nested_absmax", {ceil_div(blocks, 256)}, DType::F32});
    specs.push_back({"weight.nested_quant_map", {256}, DType::F32});
  }
  // The JSON's length depends on nested_offset's digits; a typical offset stands in for sizing.
  const std::string json =
      quant_state_json(s, dtype, shape.out_features, shape.in_features, 0.012345678901234567);
  specs.push_back({std::string("weight.quant_state.bitsandbytes__") + type_name(s.quant_type),
                   {static_cast<int64_t>(json.size())},
                   DType::U8});
  if (shape.has_bias) specs.push_back({"bias", {shape.out_features}, dtype});
  return specs;
}

std::vector<TensorSpec> eight_bit_tensor_specs(const LinearShape& shape, DType dtype) {
  std::vector<TensorSpec> specs;
  specs.push_back({"weight", {shape.out_features, shape.in_features}, DType::I8});
  specs.push_back({"SCB", {shape.out_features}, DType::F32});
  specs.push_back({"weight_format", {}, DType::U8});
  if (shape.has_bias) specs.push_back({"bias", {shape.out_features}, dtype});
  return specs;
}

}  // namespace qplug::bnb
