// A 4-bit GPTQ-layout weight prepared for the CPU int4 kernels: scales and zero*scale in float32,
// and, for act-order checkpoints, the rows reordered so each group's inputs are contiguous (the
// activations are permuted the same way on every call, as exllama does on the GPU).
//
// The outputs are stored in strips of kStripOutputs: each strip is a GPTQ-layout weight of its own
// ([in / 8, 64] codes, [G, 64] scales), the strips one after another, in huge-page weight memory.
// In the checkpoint's [in / 8, out] layout a strip's 512 rows of 256 bytes lie `out` words apart,
// a jump of a page or more on every row; strip by strip a GEMV streams through memory in order:
// 4096 x 4096 cold at M=1 on two threads (the kernel alone), 211-216 us against 302-315 us.
#pragma once

#include <ATen/core/Tensor.h>

#include "int4/int4_kernels.hpp"

namespace qplug::int4 {

class Int4Weight {
 public:
  Int4Weight() = default;
  // qweight int32 [in / 8, out]; zeros [out, G] true zero points (any integer dtype); scales
  // [G, out] (any float dtype); g_idx int32 [in] (group of each input). Requires in % G == 0 and
  // (in / G) % 8 == 0 — see supports().
  Int4Weight(const at::Tensor& qweight, const at::Tensor& zeros, const at::Tensor& scales,
             const at::Tensor& g_idx);
  static bool supports(int64_t in_features, int64_t groups);

  // x [M, in] float32 -> [M, out] float32.
  at::Tensor matmul(const at::Tensor& x) const;
  // The dense weight [out, in] in the checkpoint's (original) input order.
  at::Tensor dequantize() const;
  // The codes as the checkpoint packed them: int32 [in / 8, out] in its input order, so that a
  // layer need not keep its own copy to save.
  at::Tensor qweight() const;
  bool defined() const { return qweight_.defined(); }

  static constexpr int64_t kStripOutputs = 64;

 private:
  int64_t strips() const { return (out_ + kStripOutputs - 1) / kStripOutputs; }
  // Strip s: outputs [kStripOutputs * s, + its width).
  Int4View strip_view(int64_t s) const;
  at::Tensor arrange(const at::Tensor& x) const;

  at::Tensor qweight_;      // int32: strip s's [in / 8, width] at in / 8 * kStripOutputs * s,
                            // rows in kernel order
  at::Tensor scales_;       // float32: strip s's [G, width] at G * kStripOutputs * s
  at::Tensor zero_scales_;  // float32: as scales_
  at::Tensor order_;        // int64 [in]: kernel row k holds checkpoint input order_[k]; undefined
                            // when they are the same
  int64_t in_ = 0, out_ = 0, group_size_ = 0;
};

// y = x Wᵀ + bias for x [..., in] of any floating dtype: computed in float32 through `weight`'s
// int4 kernels when it is defined, else with `dense` (float32 [out, in]); returned in x's dtype.
at::Tensor linear_forward(const at::Tensor& x, const Int4Weight& weight, const at::Tensor& dense,
                          const at::Tensor& bias, int64_t in_features, int64_t out_features);

}  // namespace qplug::int4
