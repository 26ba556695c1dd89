// A 4-bit GPTQ-layout weight prepared for the CPU int4 kernels: scales and zero*scale in float32,
// and, for act-order checkpoints, the rows reordered so each group's inputs are contiguous (the
// activations are permuted the same way on every call, as exllama does on the GPU).
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
  bool defined() const { return qweight_.defined(); }

 private:
  Int4View view() const;
  at::Tensor arrange(const at::Tensor& x) const;

  at::Tensor qweight_;      // int32 [in / 8, out], rows in kernel order
  at::Tensor scales_;       // float32 [G, out]
  at::Tensor zero_scales_;  // float32 [G, out]
  at::Tensor order_;        // int64 [in]: kernel row k holds checkpoint input order_[k]; undefined
                            // when they are the same
  int64_t in_ = 0, out_ = 0, group_size_ = 0;
};

// y = x Wᵀ + bias for x [..., in] of any floating dtype: computed in float32 through `weight`'s
// int4 kernels when it is defined, else with `dense` (float32 [out, in]); returned in x's dtype.
at::Tensor linear_forward(const at::Tensor& x, const Int4Weight& weight, const at::Tensor& dense,
                          const at::Tensor& bias, int64_t in_features, int64_t out_features);

}  // namespace qplug::int4
