// The on-disk tensors of a bitsandbytes layer, by suffix, as Linear4bit / Linear8bitLt save them
// (FORMATS.md A.5, B).
#pragma once

#include <string>
#include <vector>

#include <qplug/sdk/linear_kernel.hpp>

#include "bnb_config.hpp"

namespace qplug::bnb {

// weight (packed codes, their bytes viewed as settings.quant_storage), weight.absmax,
// weight.quant_map, [weight.nested_absmax, weight.nested_quant_map,]
// weight.quant_state.bitsandbytes__<type>, [bias].
std::vector<TensorSpec> four_bit_tensor_specs(const LinearShape& shape,
                                              const FourBitSettings& settings, DType dtype);
// weight (int8 [out, in]), SCB (f32 [out]), weight_format (u8 scalar), [bias].
std::vector<TensorSpec> eight_bit_tensor_specs(const LinearShape& shape, DType dtype);

// The quant-state JSON exactly as bitsandbytes packs it (key order, ", "/": " separators,
// nested_offset as Python prints a float).
std::string quant_state_json(const FourBitSettings& settings, DType dtype, int64_t rows,
                             int64_t cols, double nested_offset);

}  // namespace qplug::bnb
