// The bitsandbytes code tables (FORMATS.md A.1, A.2, A.4).
#pragma once

#include <array>

#include <ATen/core/Tensor.h>

#include "bnb_config.hpp"

namespace qplug::bnb {

// The quant_map of a 4-bit type: value of each 4-bit code (NF4 sorted; FP4 in bit-pattern order,
// bit 3 the sign).
const std::array<float, 16>& four_bit_table(QuantType type);

// NF4: the 15 thresholds of the CUDA kernel's comparison tree (dQuantizeNF4), ascending. A value's
// code is the number of thresholds it is strictly greater than, so a value on a threshold gets the
// lower code and NaN gets code 0, exactly as the tree does.
const std::array<float, 15>& nf4_thresholds();
// FP4: the 7 magnitude thresholds of dQuantizeFP4 and the code of each magnitude bucket.
const std::array<float, 7>& fp4_magnitude_thresholds();
const std::array<uint8_t, 8>& fp4_magnitude_codes();

// bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): the sorted
// 8-bit code double quantization uses for the absmax scales. Computed with LibTorch's float32
// linspace and products, the same operations upstream runs.
at::Tensor dynamic_map_signed();

}  // namespace qplug::bnb
