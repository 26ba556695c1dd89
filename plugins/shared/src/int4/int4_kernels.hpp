// CPU kernels for 4-bit integer weights in the GPTQ layout (qweight int32 [in / 8, out], eight
// inputs per word, the lowest bits holding the first), shared by the gptq and awq plugins (AWQ
// checkpoints are repacked into this layout when they load). One implementation per instruction
// set, chosen at run time; all compute the same sums up to float summation order.
//
// The kernels want the groups contiguous along the input dimension: act-order checkpoints
// (arbitrary g_idx) are reordered when they load (int4_weight.hpp), and the activations are
// permuted the same way before every call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qplug::int4 {

struct Int4View {
  const int32_t* qweight = nullptr;    // [in / 8, out]
  const float* scales = nullptr;       // [groups, out]
  const float* zero_scales = nullptr;  // [groups, out]: zero * scale
  int64_t in = 0;
  int64_t out = 0;
  int64_t group_size = 0;  // inputs per group, a multiple of 8
};

struct Int4Kernels {
  const char* isa;
  // y[m, o] = sum_g scale[g, o] * (sum_{j in g} x[m, j] q[j, o]) - zero_scale[g, o] * sum_{j in g}
  // x[m, j], for outputs [first, last) (multiples of 16 except at the end) and M inputs; x_sums:
  // input_group_sums of x, which the caller computes once for all the views it multiplies. Each
  // output's sums are added in an order that depends on its index alone, not on the range it is
  // computed in, so splitting the outputs between threads does not change a bit.
  void (*gemv)(const Int4View& w, const float* x, const float* x_sums, int64_t M, int64_t first,
               int64_t last, float* y, int64_t y_stride);
  // W^T [in, out] dequantized, scale * (q - zero), for inputs j in [first_in, last_in) and outputs
  // o in [first_out, last_out), as out[(j - first_in) * ld + (o - first_out)].
  void (*dequantize_t)(const Int4View& w, int64_t first_in, int64_t last_in, int64_t first_out,
                       int64_t last_out, float* out, int64_t ld);
  // y[m, c] = sum_{j < kc} x[m, j] wt[j, c] (added to y when `accumulate`) for M inputs, x's rows
  // `ldx` apart, and the `cols` columns of a dequantized tile wt whose rows are `ldw` apart: the
  // multiply of batched matmuls. Columns are taken 16 at a time, so each wt row must hold cols
  // rounded up to 16 finite floats (the extra ones are read and ignored).
  void (*gemm_tile)(const float* x, int64_t ldx, int64_t M, const float* wt, int64_t kc,
                    int64_t cols, int64_t ldw, float* y, int64_t ldy, bool accumulate);
};

// sums[m * groups + g] = the sum of input m's values in group g (x: M rows of `in` values): what
// each group's zero point multiplies, the same for every output, so it is summed once per
// product instead of once per output tile (a serial chain of float adds that bounded the GEMVs).
void input_group_sums(const float* x, int64_t M, int64_t in, int64_t group_size, float* sums);

const Int4Kernels& int4_kernels();  // best available (QPLUG_INT4_ISA forces one)
const Int4Kernels& int4_kernels(const std::string& isa);
std::vector<std::string> int4_isas();  // this processor's, best last

const Int4Kernels& int4_scalar();
const Int4Kernels& int4_avx2();
const Int4Kernels& int4_avx512();

}  // namespace qplug::int4
