// Portable reference implementations of the int4 kernels.
#include "int4/int4_kernels.hpp"

namespace qplug::int4 {

namespace {

void gemv(const Int4View& w, const float* x, const float* x_sums, int64_t M, int64_t first,
          int64_t last, float* y, int64_t y_stride) {
  const int64_t groups = w.in / w.group_size;
  for (int64_t m = 0; m < M; ++m) {
    const float* xm = x + m * w.in;
    for (int64_t o = first; o < last; ++o) {
      float total = 0.0f;
      for (int64_t g = 0; g < groups; ++g) {
        float dot = 0.0f;
        for (int64_t j = g * w.group_size; j < (g + 1) * w.group_size; ++j) {
          const int32_t word = w.qweight[(j / 8) * w.out + o];
          dot += xm[j] * static_cast<float>((word >> (4 * (j % 8))) & 15);
        }
        total +=
            w.scales[g * w.out + o] * dot - w.zero_scales[g * w.out + o] * x_sums[m * groups + g];
      }
      y[m * y_stride + o] = total;
    }
  }
}

void dequantize_t(const Int4View& w, int64_t first_in, int64_t last_in, int64_t first_out,
                  int64_t last_out, float* out, int64_t ld) {
  for (int64_t j = first_in; j < last_in; ++j) {
    const int64_t g = j / w.group_size;
    float* row = out + (j - first_in) * ld;
    for (int64_t o = first_out; o < last_out; ++o) {
      const int32_t word = w.qweight[(j / 8) * w.out + o];
      const float q = static_cast<float>((word >> (4 * (j % 8))) & 15);
      row[o - first_out] = w.scales[g * w.out + o] * q - w.zero_scales[g * w.out + o];
    }
  }
}

void gemm_tile(const float* x, int64_t ldx, int64_t M, const float* wt, int64_t kc, int64_t cols,
               int64_t ldw, float* y, int64_t ldy, bool accumulate) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < cols; ++c) {
      float sum = 0.0f;
      for (int64_t j = 0; j < kc; ++j)
        sum += x[m * ldx + j] * wt[j * ldw + c];
      float& out = y[m * ldy + c];
      out = accumulate ? out + sum : sum;
    }
}

}  // namespace

void input_group_sums(const float* x, int64_t M, int64_t in, int64_t group_size, float* sums) {
  const int64_t groups = in / group_size;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t g = 0; g < groups; ++g) {
      float sum = 0.0f;
      for (int64_t j = g * group_size; j < (g + 1) * group_size; ++j)
        sum += x[m * in + j];
      sums[m * groups + g] = sum;
    }
}

const Int4Kernels& int4_scalar() {
  static const Int4Kernels k{"scalar", gemv, dequantize_t, gemm_tile};
  return k;
}

}  // namespace qplug::int4
