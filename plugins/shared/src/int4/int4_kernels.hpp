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
  // x[m, j], for outputs [first, last) (multiples of 16 except at the end) and M inputs.
  void (*gemv)(const Int4View& w, const float* x, int64_t M, int64_t first, int64_t last, float* y,
               int64_t y_stride);
  // The dense weight rows o in [first, last) ... as out[j * out_stride + o] = scale * (q - zero),
  // i.e. W^T [in, out], for input rows [first_in, last_in).
  void (*dequantize_t)(const Int4View& w, int64_t first_in, int64_t last_in, float* out);
};

const Int4Kernels& int4_kernels();  // best available (QPLUG_INT4_ISA forces one)
const Int4Kernels& int4_kernels(const std::string& isa);
std::vector<std::string> int4_isas();  // this processor's, best last

const Int4Kernels& int4_scalar();
const Int4Kernels& int4_avx2();
const Int4Kernels& int4_avx512();

}  // namespace qplug::int4
