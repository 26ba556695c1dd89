#pragma once
// LLM.int8's activation side: the row-wise int8 codes of a batch of inputs and its outlier
// columns, as bitsandbytes' int8_vectorwise_quant computes them.
#include <ATen/ATen.h>

#include <cstdint>

#include "kernels/cpu/cpu_kernels.hpp"

namespace qplug::bnb {

struct Int8Activations {
  // [M, K] codes, zero in outlier columns. In the calling thread's scratch memory: valid until the
  // thread's next quantize_int8_activations.
  const int8_t* codes;
  // [M] per row: the absmax of the values below the threshold (rowstats), NaN for a row with a
  // NaN or infinite value below it, so that the row's outputs are NaN as in dense math.
  const float* row_scales;
  // int64 indices of the columns with |x| >= threshold in some row; undefined when there are none
  // or the threshold is 0.
  at::Tensor outlier_columns;
};

// Inputs are split between threads in row ranges of at least this many values: quantizing a few
// inputs takes microseconds, less than waking a second thread (a 16 x 4096 int8 layer measured
// 10-30% slower with its inputs split, in four noisy rounds).
constexpr int64_t kMinValuesPerThread = 262144;

// x: [M, K] inputs of any floating dtype. Like bitsandbytes, quantizes x.to(float16): an element
// is an outlier when |x| >= threshold (compared in float16); outliers are left out of their row's
// absmax, and whole outlier columns get code 0 (their products are added back in full precision).
Int8Activations quantize_int8_activations(const at::Tensor& x, float threshold,
                                          const CpuKernels& kernels);

}  // namespace qplug::bnb
