#include "int4/int4_weight.hpp"

#include <algorithm>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <qplug/sdk/errors.hpp>
#include <qplug/sdk/tensor_memory.hpp>

#include "packing.hpp"

namespace qplug::int4 {

namespace {
// Batches up to this many rows take the fused GEMV; larger ones multiply dequantized tiles.
constexpr int64_t kMaxGemvRows = 16;
// A dequantized tile of W^T: 256 inputs x one strip's 64 outputs, 64 KiB (L2); each 16-column
// part of it, 16 KiB, stays in L1 while the inputs stream past.
constexpr int64_t kTileDepth = 256;
constexpr int64_t kTileCols = Int4Weight::kStripOutputs;

float* scratch(int64_t floats) {
  // Reused across calls (fresh pages cost more in faults than the math), and zero-filled when it
  // grows: a tile's columns past the layer's last output are read (and ignored) by gemm_tile, so
  // they must hold finite floats.
  thread_local std::vector<float> buffer;
  if (static_cast<int64_t>(buffer.size()) < floats) buffer.resize(static_cast<size_t>(floats));
  return buffer.data();
}

// `matrix` [rows, cols] as strips of Int4Weight::kStripOutputs columns, each [rows, width]
// row-major, one after another, in weight memory.
at::Tensor to_strips(const at::Tensor& matrix) {
  const int64_t rows = matrix.size(0), cols = matrix.size(1);
  at::Tensor strips = empty_for_weights({rows * cols}, matrix.scalar_type());
  for (int64_t c0 = 0; c0 < cols; c0 += Int4Weight::kStripOutputs) {
    const int64_t width = std::min(Int4Weight::kStripOutputs, cols - c0);
    strips.narrow(0, rows * c0, rows * width)
        .view({rows, width})
        .copy_(matrix.narrow(1, c0, width));
  }
  return strips;
}

// The inverse of to_strips: [rows, cols].
at::Tensor from_strips(const at::Tensor& strips, int64_t rows, int64_t cols) {
  at::Tensor matrix = at::empty({rows, cols}, strips.options());
  for (int64_t c0 = 0; c0 < cols; c0 += Int4Weight::kStripOutputs) {
    const int64_t width = std::min(Int4Weight::kStripOutputs, cols - c0);
    matrix.narrow(1, c0, width)
        .copy_(strips.narrow(0, rows * c0, rows * width).view({rows, width}));
  }
  return matrix;
}
}  // namespace

bool Int4Weight::supports(int64_t in_features, int64_t groups) {
  return groups > 0 && in_features % groups == 0 && (in_features / groups) % 8 == 0;
}

Int4Weight::Int4Weight(const at::Tensor& qweight, const at::Tensor& zeros, const at::Tensor& scales,
                       const at::Tensor& g_idx)
    : in_(qweight.size(0) * 8), out_(qweight.size(1)) {
  const int64_t groups = scales.size(0);
  if (!supports(in_, groups))
    throw KernelError("int4 kernel: " + std::to_string(in_) + " inputs do not split into " +
                      std::to_string(groups) + " groups of a multiple of 8");
  group_size_ = in_ / groups;
  const at::Tensor gidx = g_idx.to(at::kLong);
  const at::Tensor natural = at::arange(in_, at::TensorOptions().dtype(at::kLong)) / group_size_;
  at::Tensor kernel_order = qweight;
  if (!at::equal(gidx, natural)) {
    // Act-order: sort the inputs by group (stable, so each group keeps its checkpoint order) and
    // repack the rows in that order.
    order_ = std::get<1>(gidx.sort(/*stable=*/true, 0, /*descending=*/false));
    const at::Tensor counts = at::bincount(gidx, {}, groups);
    if (!at::all(counts == group_size_).item<bool>())
      throw KernelError("int4 kernel: g_idx does not put " + std::to_string(group_size_) +
                        " inputs in every group");
    const at::Tensor codes = packing::unpack_gptq_qweight(qweight, 4, in_);  // [out, in]
    kernel_order = packing::pack_gptq_qweight(codes.index_select(1, order_).contiguous(), 4);
  }
  const at::Tensor float_scales = scales.to(at::kFloat);
  qweight_ = to_strips(kernel_order.to(at::kInt));
  scales_ = to_strips(float_scales);
  zero_scales_ = to_strips(zeros.to(at::kFloat).t() * float_scales);
}

Int4View Int4Weight::strip_view(int64_t s) const {
  const int64_t first = kStripOutputs * s;
  Int4View v;
  v.qweight = qweight_.data_ptr<int32_t>() + in_ / 8 * first;
  v.scales = scales_.data_ptr<float>() + in_ / group_size_ * first;
  v.zero_scales = zero_scales_.data_ptr<float>() + in_ / group_size_ * first;
  v.in = in_;
  v.out = std::min(kStripOutputs, out_ - first);
  v.group_size = group_size_;
  return v;
}

at::Tensor Int4Weight::qweight() const {
  const at::Tensor kernel_order = from_strips(qweight_, in_ / 8, out_);
  if (!order_.defined()) return kernel_order;
  const at::Tensor codes = packing::unpack_gptq_qweight(kernel_order, 4, in_);  // [out, in]
  at::Tensor restored = at::empty_like(codes);
  restored.index_copy_(1, order_, codes);
  return packing::pack_gptq_qweight(restored, 4);
}

at::Tensor Int4Weight::arrange(const at::Tensor& x) const {
  const at::Tensor c = x.to(at::kFloat).contiguous();
  return order_.defined() ? c.index_select(1, order_).contiguous() : c;
}

at::Tensor Int4Weight::matmul(const at::Tensor& x) const {
  const at::Tensor xs = arrange(x);
  const int64_t M = xs.size(0);
  at::Tensor y = at::empty({M, out_}, at::TensorOptions().dtype(at::kFloat));
  const Int4Kernels& k = int4_kernels();
  const float* xp = xs.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  if (M <= kMaxGemvRows) {
    std::vector<float> sums(static_cast<size_t>(M * (in_ / group_size_)));
    input_group_sums(xp, M, in_, group_size_, sums.data());
    // Whole strips per task, each thread's strips one stretch of memory.
    at::parallel_for(0, strips(), 1, [&](int64_t first, int64_t last) {
      for (int64_t s = first; s < last; ++s) {
        const Int4View w = strip_view(s);
        k.gemv(w, xp, sums.data(), M, 0, w.out, yp + kStripOutputs * s, out_);
      }
    });
    return y;
  }
  // Larger batches. Each task dequantizes a tile of W^T (kTileDepth inputs x kTileCols outputs)
  // into per-thread scratch that stays in cache and multiplies it with every input right away: no
  // dense copy of the weight, and no BLAS, whose own threads would compete with LibTorch's OpenMP
  // threads for the cores (with that contention the former dequantize-then-addmm path took ~2x a
  // dense matmul at M = 128). Each input's sums over the tiles of a column add up in y.
  at::parallel_for(0, strips(), 1, [&](int64_t first, int64_t last) {
    float* tile = scratch(kTileDepth * kTileCols);
    for (int64_t t = first; t < last; ++t) {
      const Int4View w = strip_view(t);
      const int64_t o0 = t * kTileCols;
      for (int64_t j0 = 0; j0 < in_; j0 += kTileDepth) {
        const int64_t kc = std::min(kTileDepth, in_ - j0);
        k.dequantize_t(w, j0, j0 + kc, 0, w.out, tile, kTileCols);
        k.gemm_tile(xp + j0, in_, M, tile, kc, w.out, kTileCols, yp + o0, out_, j0 > 0);
      }
    }
  });
  return y;
}

at::Tensor Int4Weight::dequantize() const {
  at::Tensor wt = at::empty({in_, out_}, at::TensorOptions().dtype(at::kFloat));
  const Int4Kernels& k = int4_kernels();
  float* out = wt.data_ptr<float>();
  at::parallel_for(0, in_, 64, [&](int64_t first, int64_t last) {
    for (int64_t s = 0; s < strips(); ++s) {
      const Int4View w = strip_view(s);
      k.dequantize_t(w, first, last, 0, w.out, out + first * out_ + kStripOutputs * s, out_);
    }
  });
  at::Tensor dense = wt.t();  // [out, in] in kernel order
  if (!order_.defined()) return dense.contiguous();
  at::Tensor restored = at::empty({out_, in_}, at::TensorOptions().dtype(at::kFloat));
  restored.index_copy_(1, order_, dense);
  return restored;
}

at::Tensor linear_forward(const at::Tensor& x, const Int4Weight& weight, const at::Tensor& dense,
                          const at::Tensor& bias, int64_t in_features, int64_t out_features) {
  const at::Tensor x2 = x.reshape({-1, in_features}).to(at::kFloat);
  at::Tensor y = weight.defined() ? weight.matmul(x2) : at::matmul(x2, dense.t());
  if (bias.defined()) y.add_(bias.to(at::kFloat));
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = out_features;
  return y.view(shape).to(x.scalar_type());
}

}  // namespace qplug::int4
