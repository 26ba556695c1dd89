#include "int4/int4_weight.hpp"

#include <algorithm>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <qplug/sdk/errors.hpp>

#include "packing.hpp"

namespace qplug::int4 {

namespace {
// Batches up to this many rows take the fused GEMV; larger ones multiply dequantized tiles.
constexpr int64_t kMaxGemvRows = 16;
// A dequantized tile of W^T: 256 inputs x 64 outputs, 64 KiB (L2); each 16-column strip of it,
// 16 KiB, stays in L1 while the inputs stream past.
constexpr int64_t kTileDepth = 256;
constexpr int64_t kTileCols = 64;

float* scratch(int64_t floats) {
  // Reused across calls (fresh pages cost more in faults than the math), and zero-filled when it
  // grows: a tile's columns past the layer's last output are read (and ignored) by gemm_tile, so
  // they must hold finite floats.
  thread_local std::vector<float> buffer;
  if (static_cast<int64_t>(buffer.size()) < floats) buffer.resize(static_cast<size_t>(floats));
  return buffer.data();
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
  if (at::equal(gidx, natural)) {
    qweight_ = qweight.contiguous();
  } else {
    // Act-order: sort the inputs by group (stable, so each group keeps its checkpoint order) and
    // repack the rows in that order.
    order_ = std::get<1>(gidx.sort(/*stable=*/true, 0, /*descending=*/false));
    const at::Tensor counts = at::bincount(gidx, {}, groups);
    if (!at::all(counts == group_size_).item<bool>())
      throw KernelError("int4 kernel: g_idx does not put " + std::to_string(group_size_) +
                        " inputs in every group");
    const at::Tensor codes = packing::unpack_gptq_qweight(qweight, 4, in_);  // [out, in]
    qweight_ = packing::pack_gptq_qweight(codes.index_select(1, order_).contiguous(), 4);
  }
  scales_ = scales.to(at::kFloat).contiguous();
  zero_scales_ = (zeros.to(at::kFloat).t() * scales_).contiguous();
}

Int4View Int4Weight::view() const {
  Int4View v;
  v.qweight = qweight_.data_ptr<int32_t>();
  v.scales = scales_.data_ptr<float>();
  v.zero_scales = zero_scales_.data_ptr<float>();
  v.in = in_;
  v.out = out_;
  v.group_size = group_size_;
  return v;
}

at::Tensor Int4Weight::arrange(const at::Tensor& x) const {
  const at::Tensor c = x.to(at::kFloat).contiguous();
  return order_.defined() ? c.index_select(1, order_).contiguous() : c;
}

at::Tensor Int4Weight::matmul(const at::Tensor& x) const {
  const at::Tensor xs = arrange(x);
  const int64_t M = xs.size(0);
  at::Tensor y = at::empty({M, out_}, at::TensorOptions().dtype(at::kFloat));
  const Int4View w = view();
  const Int4Kernels& k = int4_kernels();
  const float* xp = xs.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  if (M <= kMaxGemvRows) {
    // Work in whole tiles of 16 outputs per task.
    at::parallel_for(0, (out_ + 15) / 16, 8, [&](int64_t first, int64_t last) {
      k.gemv(w, xp, M, first * 16, std::min(out_, last * 16), yp, out_);
    });
    return y;
  }
  // Larger batches. Each task dequantizes a tile of W^T (kTileDepth inputs x kTileCols outputs)
  // into per-thread scratch that stays in cache and multiplies it with every input right away: no
  // dense copy of the weight, and no BLAS, whose own threads would compete with LibTorch's OpenMP
  // threads for the cores (with that contention the former dequantize-then-addmm path took ~2x a
  // dense matmul at M = 128). Each input's sums over the tiles of a column add up in y.
  at::parallel_for(0, (out_ + kTileCols - 1) / kTileCols, 1, [&](int64_t first, int64_t last) {
    float* tile = scratch(kTileDepth * kTileCols);
    for (int64_t t = first; t < last; ++t) {
      const int64_t o0 = t * kTileCols, cols = std::min(kTileCols, out_ - o0);
      for (int64_t j0 = 0; j0 < in_; j0 += kTileDepth) {
        const int64_t kc = std::min(kTileDepth, in_ - j0);
        k.dequantize_t(w, j0, j0 + kc, o0, o0 + cols, tile, kTileCols);
        k.gemm_tile(xp + j0, in_, M, tile, kc, cols, kTileCols, yp + o0, out_, j0 > 0);
      }
    }
  });
  return y;
}

at::Tensor Int4Weight::dequantize() const {
  at::Tensor wt = at::empty({in_, out_}, at::TensorOptions().dtype(at::kFloat));
  const Int4View w = view();
  const Int4Kernels& k = int4_kernels();
  float* out = wt.data_ptr<float>();
  at::parallel_for(0, in_, 64, [&](int64_t first, int64_t last) {
    k.dequantize_t(w, first, last, 0, out_, out + first * out_, out_);
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
