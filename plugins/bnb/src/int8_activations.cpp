#include "int8_activations.hpp"

#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

namespace qplug::bnb {

namespace {

// Rows [first, last) of values (x rounded to float16 and back) made ready for the int8 matmul:
// outliers and non-finite values become 0 for the absmax and the codes (a NaN code would be
// undefined); outlier columns are flagged in `outlier` and rows with a non-finite inlier in
// `non_finite_row`. Branch-free so that the compiler vectorizes it.
void drop_outliers(float* values, int64_t K, int64_t first, int64_t last, bool split, float limit,
                   uint8_t* outlier, uint8_t* non_finite_row) {
  for (int64_t m = first; m < last; ++m) {
    float* row = values + m * K;
    uint8_t bad = 0;
    for (int64_t k = 0; k < K; ++k) {
      const float a = std::fabs(row[k]);
      const bool is_outlier = split && a >= limit;  // an infinity is an outlier, a NaN is not
      const bool is_non_finite = !(a <= FLT_MAX);
      outlier[k] |= is_outlier;
      bad |= is_non_finite && !is_outlier;
      row[k] = is_outlier || is_non_finite ? 0.0f : row[k];
    }
    non_finite_row[m] = bad;
  }
}

}  // namespace

Int8Activations quantize_int8_activations(const at::Tensor& x, float threshold,
                                          const CpuKernels& kernels) {
  const int64_t M = x.size(0), K = x.size(1);
  const at::Tensor input = x.to(at::kFloat).contiguous();  // no copy for float32 inputs
  const size_t n = static_cast<size_t>(M * K);
  // In scratch memory: fresh tensors would fault their pages in on every call.
  auto* values = static_cast<float*>(thread_scratch(ScratchSlot::kInt8Inputs, n * sizeof(float)));
  auto* codes = static_cast<int8_t*>(thread_scratch(ScratchSlot::kInt8InputCodes, n));
  auto* scales = static_cast<float*>(
      thread_scratch(ScratchSlot::kInt8RowScales, static_cast<size_t>(M) * sizeof(float)));
  // bitsandbytes compares the float16 tensor with the threshold in float16; 0 disables outliers.
  const bool split = threshold > 0.0f;
  const float limit = split ? static_cast<float>(c10::Half(threshold)) : 0.0f;
  std::vector<uint8_t> outlier(static_cast<size_t>(K), 0);
  std::vector<uint8_t> non_finite_row(static_cast<size_t>(M), 0);
  std::mutex outlier_mutex;
  // Rows are independent (an outlier leaves only itself out of its row's absmax), so threads take
  // row ranges end to end; only the outlier column flags are merged.
  const int64_t grain = std::max<int64_t>(1, kMinValuesPerThread / std::max<int64_t>(K, 1));
  at::parallel_for(0, M, grain, [&](int64_t first, int64_t last) {
    const int64_t count = (last - first) * K;
    // bitsandbytes quantizes A.to(float16): the threshold test, the row absmax and the codes all
    // see float16 values.
    kernels.round_to_float16(input.data_ptr<float>() + first * K, count, values + first * K);
    std::vector<uint8_t> local(static_cast<size_t>(K), 0);  // stays 0 without a threshold
    drop_outliers(values, K, first, last, split, limit, local.data(), non_finite_row.data());
    kernels.quantize_int8_rows(values, K, first, last, codes, scales);
    if (!split) return;
    const std::lock_guard<std::mutex> lock(outlier_mutex);
    for (int64_t k = 0; k < K; ++k)
      outlier[k] |= local[k];
  });
  for (int64_t m = 0; m < M; ++m)
    if (non_finite_row[m]) scales[m] = std::numeric_limits<float>::quiet_NaN();

  std::vector<int64_t> columns;
  for (int64_t k = 0; k < K; ++k)
    if (outlier[k]) columns.push_back(k);
  Int8Activations out{codes, scales, at::Tensor()};
  if (columns.empty()) return out;
  // The other rows' values in these columns counted towards their absmax but are not multiplied
  // in int8 (int8_vectorwise_quant zeroes the columns after quantizing).
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k : columns)
      codes[m * K + k] = 0;
  out.outlier_columns = at::tensor(columns, at::TensorOptions().dtype(at::kLong));
  return out;
}

}  // namespace qplug::bnb
