// The GPTQ solver for one layer: the Hessian accumulation and the column-by-column quantization
// with error feedback, as IST-DASLab gptq.py / AutoGPTQ do it (docs: FORMATS.md C.1 and C.2).
//
// Every reference quirk is kept, because checkpoints made here must be interchangeable with theirs:
// the per-channel fallback parameters are taken before dead columns are zeroed, group parameters
// are found from the "stale" global W when group_size < blocksize, act-order ties follow torch's
// argsort, and the dampening and Cholesky chain are the same LibTorch calls. With the BLAS/LAPACK
// the reference vectors were made with (netlib's), the result is bit-identical to gptq.py's; an
// optimized BLAS rounds differently in the last bits, which can flip a code that sat on a tie.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

namespace qplug::gptq {

struct GptqOptions {
  int bits = 4;              // 2, 3, 4, 8
  int64_t group_size = 128;  // -1: one group over all columns
  bool sym = true;
  bool act_order = false;  // desc_act
  bool static_groups = false;
  double percdamp = 0.01;
  int64_t blocksize = 128;  // lazy-batch width
  bool mse = false;         // find_params' grid search (grid 100, maxshrink 0.8, norm 2.4)
  int min_zero = 0;         // asymmetric zero points below this are raised to it
};

struct GptqResult {
  at::Tensor qint;   // uint8 [rows, cols], codes in [0, 2^bits-1], in the original column order
  at::Tensor scale;  // float32 [rows, G], groups in creation order (as AutoGPTQ returns them)
  at::Tensor zero;   // float32 [rows, G]
  at::Tensor g_idx;  // int32 [cols]
  at::Tensor q;      // float32 [rows, cols]: scale[:, g_idx] * (qint - zero[:, g_idx])
  double damp = 0;   // the percdamp finally used
  int retries = 0;   // dampening increases needed for a positive-definite Hessian
};

// gptq.py add_batch: H *= N/(N+B); N += B; H += (2/N) XᵀX, in float32, where B counts sequences
// (not tokens). Only the lower triangle is multiplied out (ssyrk on diagonal tiles, GEMM below
// them: half of XᵀX's work); the upper triangle is mirrored from it when hessian() is asked for.
class HessianAccumulator {
 public:
  // tile: width of the column tiles of the blocked update (the default suits the BLAS; tests use
  // narrow ones to cover the tiles below the diagonal).
  explicit HessianAccumulator(int64_t columns, int64_t tile = kDefaultTile);
  static constexpr int64_t kDefaultTile = 4096;

  // input: [B, T, cols] or [T, cols] (then B = 1), any floating dtype.
  void add_batch(const at::Tensor& input);
  // float32 [cols, cols]. Not safe to call concurrently with itself or add_batch.
  const at::Tensor& hessian() const;
  int64_t samples() const { return samples_; }

 private:
  int64_t columns_;
  int64_t tile_;  // width of the column tiles of the blocked rank-k update
  int64_t samples_ = 0;
  mutable at::Tensor h_;
  mutable bool upper_stale_ = false;
};

// Quantizes weight [rows, cols] (any floating dtype) with the Hessian [cols, cols] (any floating
// dtype; taken by value so that it can be moved in, and never written to, so passing
// HessianAccumulator::hessian() is safe). Throws KernelError for bad shapes or options, NaN/Inf
// inputs, or a Hessian that no dampening below 1.0 makes positive definite.
GptqResult quantize_layer(const at::Tensor& weight, at::Tensor hessian, const GptqOptions& options);

}  // namespace qplug::gptq
