#include "code_tables.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/ops/linspace.h>
#include <ATen/ops/tensor.h>

namespace qplug::bnb {

const std::array<float, 16>& four_bit_table(QuantType type) {
  // NF4: normal-distribution quantiles (offset 0.9677083), 8 negative and 9 non-negative levels.
  static const std::array<float, 16> nf4 = {-1.0f,
                                            -0.6961928009986877f,
                                            -0.5250730514526367f,
                                            -0.39491748809814453f,
                                            -0.28444138169288635f,
                                            -0.18477343022823334f,
                                            -0.09105003625154495f,
                                            0.0f,
                                            0.07958029955625534f,
                                            0.16093020141124725f,
                                            0.24611230194568634f,
                                            0.33791524171829224f,
                                            0.44070982933044434f,
                                            0.5626170039176941f,
                                            0.7229568362236023f,
                                            1.0f};
  // FP4 (e2m1 with bias, subnormal 0.0625) over its absmax 12, bit 3 the sign. Code 8 is +0.0
  // because upstream's literal is an integer zero.
  static const std::array<float, 16> fp4 = {
      0.0f, 0.0625f / 12,  8.0f / 12,  12.0f / 12,  4.0f / 12,  6.0f / 12,  2.0f / 12,  3.0f / 12,
      0.0f, -0.0625f / 12, -8.0f / 12, -12.0f / 12, -4.0f / 12, -6.0f / 12, -2.0f / 12, -3.0f / 12};
  return type == QuantType::NF4 ? nf4 : fp4;
}

const std::array<float, 15>& nf4_thresholds() {
  // The literals of bitsandbytes' dQuantizeNF4 (midpoints of neighbouring NF4 levels), rounded to
  // float32 as the CUDA compiler rounds them.
  static const std::array<float, 15> t = {
      -0.8480964004993439f,  -0.6106329262256622f,  -0.4599952697753906f,   -0.33967943489551544f,
      -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
      0.1202552504837513f,   0.2035212516784668f,   0.2920137718319893f,    0.3893125355243683f,
      0.5016634166240692f,   0.6427869200706482f,   0.8614784181118011f};
  return t;
}

const std::array<float, 7>& fp4_magnitude_thresholds() {
  static const std::array<float, 7> t = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f,
                                         0.4166667f,  0.583333f,  0.8333333f};
  return t;
}

const std::array<uint8_t, 8>& fp4_magnitude_codes() {
  // Codes of the magnitudes 0, 0.0052, 0.1667, 0.25, 0.3333, 0.5, 0.6667, 1 (ascending).
  static const std::array<uint8_t, 8> codes = {0, 1, 6, 7, 4, 5, 2, 3};
  return codes;
}

at::Tensor dynamic_map_signed() {
  constexpr int kMaxExponentBits = 7;
  std::vector<double> values;
  for (int i = 0; i < kMaxExponentBits; ++i) {
    const int64_t items = (int64_t{1} << i) + 1;
    at::Tensor bounds = at::linspace(0.1, 1.0, items, at::TensorOptions().dtype(at::kFloat));
    at::Tensor means = (bounds.narrow(0, 0, items - 1) + bounds.narrow(0, 1, items - 1)) / 2.0;
    const double scale = std::pow(10.0, -(kMaxExponentBits - 1) + i);
    at::Tensor positive = means * scale;
    at::Tensor negative = means * -scale;
    const float* p = positive.data_ptr<float>();
    const float* n = negative.data_ptr<float>();
    for (int64_t j = 0; j < items - 1; ++j)
      values.push_back(p[j]);
    for (int64_t j = 0; j < items - 1; ++j)
      values.push_back(n[j]);
  }
  values.push_back(0.0);
  values.push_back(1.0);
  std::sort(values.begin(), values.end());
  return at::tensor(values, at::TensorOptions().dtype(at::kDouble)).to(at::kFloat);
}

}  // namespace qplug::bnb
