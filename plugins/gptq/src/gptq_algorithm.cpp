#include "gptq_algorithm.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/Parallel.h>
#include <cblas.h>

#include "qplug/sdk/errors.hpp"

namespace qplug::gptq {
namespace {

constexpr double kDampIncrement = 0.0025;  // GPTQModel's damp_auto_increment
constexpr int kMseGrid = 100;
constexpr double kMseMaxShrink = 0.8;
constexpr double kMseNorm = 2.4;

// The solver keeps Wᵀ: one weight column per memory row, its rows padded to a multiple of
// kRowChunk. One column of a chunk of rows is then contiguous, so GPTQ's column loop runs as SIMD
// over rows, and the trailing update subtracts from a contiguous slab. 64 rows x 128 columns of
// floats is 32 KiB, an L1 cache. Padding rows are zero and quantize to zero with no feedback.
constexpr int64_t kRowChunk = 64;
// GCC/Clang vector extensions: 8 lanes, lowered to AVX2 or to pairs of SSE2 operations.
using Vec8 = float __attribute__((vector_size(32)));
using Vec8i = int32_t __attribute__((vector_size(32)));
constexpr int64_t kVecs = kRowChunk / 8;
// Every helper that takes or returns a Vec8 must be inlined into the target-cloned solver: as a
// real call, the AVX2 clone passes 32-byte vectors in ymm registers while a helper compiled for
// the baseline target expects them in memory, and the solve computes garbage. Release builds
// happened to inline them; Debug (-O0) did not, and every GPTQ result there was wrong.
#define QPLUG_VEC_HELPER inline __attribute__((always_inline))
QPLUG_VEC_HELPER Vec8i splat_sign() {
  constexpr int32_t s = std::numeric_limits<int32_t>::min();
  return Vec8i{s, s, s, s, s, s, s, s};
}

[[noreturn]] void fail(const std::string& what) {
  throw KernelError("gptq: " + what);
}

std::string shape_of(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

// For the contiguous float32 working copies: one pass, no temporaries.
bool all_finite(const at::Tensor& t) {
  const float* p = t.data_ptr<float>();
  const int64_t n = t.numel();
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    finite &= std::fabs(p[i]) <= std::numeric_limits<float>::max();
  }
  return finite;
}

// The quantization grid of Quantizer.find_params / quantize.
struct Grid {
  float maxq;
  bool sym;
  bool mse;
  float min_zero;  // applied to asymmetric zeros only (symmetric ones are 2^(bits-1) >= 2)
};

// Per-group parameters, stored [G, padded rows] so that a chunk's rows are contiguous; group g is
// the g-th group created.
struct GroupTable {
  at::Tensor scale;
  at::Tensor zero;
  int64_t stride;  // padded rows
  float* scale_of(int64_t g) { return scale.data_ptr<float>() + g * stride; }
  float* zero_of(int64_t g) { return zero.data_ptr<float>() + g * stride; }
};

// torch.round (half to even). std::nearbyint is a libm call on baseline x86-64; adding and removing
// 2^23 rounds in the FPU's default (nearest-even) mode, which is the same operation, and it
// vectorizes. Every float at or above 2^23 is already an integer; NaN falls through unchanged.
inline float round_half_even(float x) {
  constexpr float kMagic = 8388608.0f;
  const float ax = std::fabs(x);
  const float rounded = (ax + kMagic) - kMagic;  // computed unconditionally so the loop vectorizes
  return std::copysign(ax < kMagic ? rounded : ax, x);
}

// find_params' range for one row (C.2): widened to include 0, made symmetric when asked, and set to
// [-1, 1] when it is empty.
struct Range {
  float xmin, xmax;
};
Range clamped_range(float row_min, float row_max, bool sym) {
  Range r{std::min(row_min, 0.0f), std::max(row_max, 0.0f)};
  if (sym) {
    r.xmax = std::max(std::fabs(r.xmin), r.xmax);
    if (r.xmin < 0) r.xmin = -r.xmax;  // a row without negative values keeps xmin = 0 (quirk)
  }
  if (r.xmin == 0 && r.xmax == 0) r = Range{-1, 1};
  return r;
}

void range_params(Range r, const Grid& grid, float* scale, float* zero) {
  *scale = (r.xmax - r.xmin) / grid.maxq;
  if (grid.sym) {
    *zero = (grid.maxq + 1) / 2;
  } else {
    *zero = std::max(round_half_even(-r.xmin / *scale), grid.min_zero);
  }
}

// find_params' grid search (mse=True), written with the same LibTorch operations as quant.py so
// that the reductions and pow round the same way. x: [rows, n] row-major; scale/zero: [rows].
void mse_search(const at::Tensor& x, const at::Tensor& xmin, const at::Tensor& xmax,
                const Grid& grid, at::Tensor& scale, at::Tensor& zero) {
  at::Tensor best = at::full({x.size(0)}, std::numeric_limits<float>::infinity(), x.options());
  const int steps = static_cast<int>(kMseMaxShrink * kMseGrid);
  for (int i = 0; i < steps; ++i) {
    const double p = 1.0 - static_cast<double>(i) / kMseGrid;
    const at::Tensor xmin1 = at::mul(xmin, p);
    const at::Tensor xmax1 = at::mul(xmax, p);
    const at::Tensor scale1 = at::div(at::sub(xmax1, xmin1), static_cast<double>(grid.maxq));
    at::Tensor zero1 = zero;
    if (!grid.sym) {
      zero1 = at::round(at::div(at::neg(xmin1), scale1));
      if (grid.min_zero > 0) zero1 = at::clamp_min(zero1, grid.min_zero);
    }
    const at::Tensor s = scale1.unsqueeze(1), z = zero1.unsqueeze(1);
    at::Tensor q = at::clamp(at::add(at::round(at::div(x, s)), z), 0, grid.maxq);
    q = at::mul(s, at::sub(q, z));
    q.sub_(x).abs_().pow_(kMseNorm);
    const at::Tensor err = at::sum(q, 1);
    const at::Tensor better = at::lt(err, best);
    best = at::where(better, err, best);
    scale = at::where(better, scale1, scale);
    zero = at::where(better, zero1, zero);
  }
}

// Quantizer.find_params(W[:, c0:c1]) for every row; the result becomes group g of the table.
// wt is Wᵀ [cols, padded rows].
void find_params(const at::Tensor& wt, int64_t c0, int64_t c1, const Grid& grid, GroupTable& table,
                 int64_t g) {
  const int64_t rows = wt.size(1);
  const float* base = wt.data_ptr<float>();
  std::vector<float> lo(base + c0 * rows, base + (c0 + 1) * rows), hi = lo;
  for (int64_t c = c0 + 1; c < c1; ++c) {
    const float* x = base + c * rows;
    for (int64_t r = 0; r < rows; ++r) {
      lo[r] = std::min(lo[r], x[r]);
      hi[r] = std::max(hi[r], x[r]);
    }
  }
  float* scale = table.scale_of(g);
  float* zero = table.zero_of(g);
  if (!grid.mse) {
    for (int64_t r = 0; r < rows; ++r) {
      range_params(clamped_range(lo[r], hi[r], grid.sym), grid, scale + r, zero + r);
    }
    return;
  }
  at::Tensor xmin = at::empty({rows}, wt.options()), xmax = at::empty({rows}, wt.options());
  at::Tensor s = at::empty({rows}, wt.options()), z = at::empty({rows}, wt.options());
  for (int64_t r = 0; r < rows; ++r) {
    const Range range = clamped_range(lo[r], hi[r], grid.sym);
    xmin.data_ptr<float>()[r] = range.xmin;
    xmax.data_ptr<float>()[r] = range.xmax;
    range_params(range, grid, s.data_ptr<float>() + r, z.data_ptr<float>() + r);
  }
  // Row-major [rows, n], the layout the reference's first operation produces.
  const at::Tensor x = wt.narrow(0, c0, c1 - c0).t().contiguous();
  mse_search(x, xmin, xmax, grid, s, z);
  std::memcpy(scale, s.data_ptr<float>(), rows * sizeof(float));
  std::memcpy(zero, z.data_ptr<float>(), rows * sizeof(float));
}

void check_options(const GptqOptions& o) {
  if (o.bits != 2 && o.bits != 3 && o.bits != 4 && o.bits != 8) {
    fail("bits must be 2, 3, 4 or 8, not " + std::to_string(o.bits));
  }
  if (o.group_size == 0 || o.group_size < -1) {
    fail("group_size must be positive or -1, not " + std::to_string(o.group_size));
  }
  if (o.blocksize <= 0) fail("blocksize must be positive, not " + std::to_string(o.blocksize));
  if (!(o.percdamp >= 0 && o.percdamp < 1)) {
    fail("percdamp must be in [0, 1), not " + std::to_string(o.percdamp));
  }
  const int maxq = (1 << o.bits) - 1;
  if (o.min_zero < 0 || o.min_zero > maxq) {
    fail("min_zero must be in [0, " + std::to_string(maxq) + "], not " +
         std::to_string(o.min_zero));
  }
}

void check_shapes(const at::Tensor& weight, const at::Tensor& hessian) {
  if (!weight.defined() || weight.dim() != 2 || !weight.is_floating_point() ||
      weight.numel() == 0) {
    fail("the weight must be a non-empty 2-D floating tensor [rows, cols]");
  }
  const int64_t cols = weight.size(1);
  if (!hessian.defined() || hessian.dim() != 2 || hessian.size(0) != cols ||
      hessian.size(1) != cols || !hessian.is_floating_point()) {
    fail("the Hessian must be a floating tensor [" + std::to_string(cols) + ", " +
         std::to_string(cols) + "] for a weight " + shape_of(weight) + ", not " +
         (hessian.defined() ? shape_of(hessian) : std::string("undefined")));
  }
}

// Columns no calibration input ever reached (diag(H) == 0) cannot be informed by H: the reference
// sets H[d,d] = 1 and W[:, d] = 0, so they quantize to zero and take no part in error feedback.
// This zeroes W's and returns the columns; H's diagonal is fixed on copies (the caller's H is
// never written).
std::vector<int64_t> zero_dead_columns(at::Tensor& wt, const at::Tensor& h) {
  const int64_t cols = h.size(0), rows = wt.size(1);
  const float* hp = h.data_ptr<float>();
  float* wp = wt.data_ptr<float>();
  std::vector<int64_t> dead;
  for (int64_t d = 0; d < cols; ++d) {
    if (hp[d * cols + d] != 0) continue;
    dead.push_back(d);
    std::fill(wp + d * rows, wp + (d + 1) * rows, 0.0f);
  }
  return dead;
}

// diag(H) with the dead columns' entries set to 1, as the reference's H has it after step 3.
at::Tensor live_diagonal(const at::Tensor& h, const std::vector<int64_t>& dead) {
  at::Tensor diag = at::diag(h);
  for (int64_t d : dead)
    diag.data_ptr<float>()[d] = 1;
  return diag;
}

struct InverseFactor {
  at::Tensor u;  // upper Cholesky factor of the damped H⁻¹ (in LibTorch's column-major layout)
  double damp;
  int retries;
};

// chol(H + damp*mean(diag H)*I) -> cholesky_inverse -> upper chol, as gptq.py does it, with the
// dead columns (positions in h's order) set to H[d,d] = 1 first. When a factorization fails, the
// dampening grows by GPTQModel's auto increment, always applied to the undamped H, until it
// reaches 1.
InverseFactor upper_inverse_factor(const at::Tensor& h, const std::vector<int64_t>& dead,
                                   double percdamp) {
  at::Tensor live = h.clone();
  const int64_t cols = live.size(0);
  for (int64_t d : dead)
    live.data_ptr<float>()[d * cols + d] = 1;
  const at::Tensor mean = at::mean(at::diag(live));
  int retries = 0;
  for (double damp = percdamp; damp < 1.0; damp += kDampIncrement, ++retries) {
    at::Tensor damped = live.clone();
    damped.diagonal().add_(at::mul(mean, damp));
    at::Tensor lower, info;
    std::tie(lower, info) = at::linalg_cholesky_ex(damped, /*upper=*/false);
    if (info.item<int>() != 0) continue;
    at::Tensor upper;
    std::tie(upper, info) = at::linalg_cholesky_ex(at::cholesky_inverse(lower), /*upper=*/true);
    if (info.item<int>() != 0) continue;
    return {upper, damp, retries};
  }
  std::ostringstream msg;
  msg << "the Hessian is not positive definite even with percdamp raised from " << percdamp
      << " to 1 in steps of " << kDampIncrement << " (" << retries
      << " retries); use more or more varied calibration data";
  fail(msg.str());
}

// One lazy block: everything its column loop reads and writes. All [x, rows] arrays have the
// padded row count as their stride.
struct Block {
  int64_t i1, count, rows;
  float maxq;
  const float* u1t;         // U[i1:i2, i1:i2] transposed, [count, count]: column i is contiguous
  const int64_t* group_of;  // [cols]: the group used at each processing position
  const float* scale;       // [G, rows]
  const float* zero;
  const float* wt;  // Wᵀ [cols, rows]; the block reads its columns i1..i2, which the
                    // block itself never changes (the reference's W1 is a copy)
  float* err;       // [count, rows]: the block's Err1ᵀ
  float* qt;        // [cols, rows], processing order
  uint8_t* codes;   // [cols, rows], processing order
};

// AVX2 where the CPU has it, baseline SSE2 otherwise; both round alike, as FMA is never enabled.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define QPLUG_GPTQ_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define QPLUG_GPTQ_SIMD_CLONES
#endif

QPLUG_VEC_HELPER Vec8 splat(float x) {
  return Vec8{x, x, x, x, x, x, x, x};
}
QPLUG_VEC_HELPER Vec8 load8(const float* p) {
  Vec8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
QPLUG_VEC_HELPER void store8(float* p, Vec8 v) {
  std::memcpy(p, &v, sizeof(v));
}

// round_half_even on 8 lanes, with the same operations (|x| + 2^23 - 2^23, sign put back).
QPLUG_VEC_HELPER Vec8 round_half_even8(Vec8 x) {
  const Vec8i sign = splat_sign();
  const Vec8i bits = (Vec8i)x;  // a vector cast reinterprets the bits
  const Vec8 ax = (Vec8)(bits & ~sign);
  const Vec8 magic = splat(8388608.0f);
  const Vec8 rounded = (ax + magic) - magic;
  const Vec8 r = ax < magic ? rounded : ax;
  return (Vec8)((Vec8i)r | (bits & sign));
}

// GPTQ's column loop for the kRowChunk rows from r0 of one block, as SIMD over the rows.
// err: scratch [count, kRowChunk], this chunk's Err1ᵀ, kept close for the pending updates.
//
// Column i is brought up to date just before it is quantized: W1[:, i] minus err_p * U1[p, i] for
// p = 0 .. i-1, in that order and rounded step by step, which is exactly what the reference's
// per-column updates `W1[:, p:] -= err_p ⊗ U1[p, p:]` have done to it by then. Applying them
// column by column ("left-looking") keeps the chunk's column in registers instead of streaming the
// rest of the block through memory after every column.
QPLUG_GPTQ_SIMD_CLONES
void solve_chunk(const Block& b, int64_t r0, float* err) {
  const Vec8 zero_v = splat(0.0f), maxq = splat(b.maxq);
  for (int64_t i = 0; i < b.count; ++i) {
    const int64_t column = b.i1 + i;
    const float* u_col = b.u1t + i * b.count;  // U1[0 .. count, i]
    Vec8 w[kVecs];
    const float* w_in = b.wt + column * b.rows + r0;
    for (int64_t v = 0; v < kVecs; ++v) {
      w[v] = load8(w_in + 8 * v);
    }
    for (int64_t p = 0; p < i; ++p) {
      const Vec8 u = splat(u_col[p]);
      const float* e = err + p * kRowChunk;
#pragma GCC unroll 8
      for (int64_t v = 0; v < kVecs; ++v) {
        w[v] -= load8(e + 8 * v) * u;
      }
    }

    const int64_t g = b.group_of[column];
    const float* scale = b.scale + g * b.rows + r0;
    const float* zero = b.zero + g * b.rows + r0;
    const Vec8 d = splat(u_col[i]);
    float* q_out = b.qt + column * b.rows + r0;
    uint8_t* code_out = b.codes + column * b.rows + r0;
    float* e_own = err + i * kRowChunk;
    float* e_out = b.err + i * b.rows + r0;
    for (int64_t v = 0; v < kVecs; ++v) {
      const Vec8 s = load8(scale + 8 * v), z = load8(zero + 8 * v);
      Vec8 c = round_half_even8(w[v] / s) + z;  // clamp(round(w/s) + z, 0, maxq)
      c = c < zero_v ? zero_v : c;
      c = maxq < c ? maxq : c;
      const Vec8 q = s * (c - z);
      const Vec8 e = (w[v] - q) / d;
      store8(q_out + 8 * v, q);
      store8(e_own + 8 * v, e);
      store8(e_out + 8 * v, e);
      const Vec8i code = __builtin_convertvector(c, Vec8i);
      for (int k = 0; k < 8; ++k) {
        code_out[8 * v + k] = static_cast<uint8_t>(code[k]);
      }
    }
  }
}

void solve_block(const Block& b) {
  const int64_t chunks = b.rows / kRowChunk;
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> err(b.count * kRowChunk);
    for (int64_t c = begin; c < end; ++c) {
      solve_chunk(b, c * kRowChunk, err.data());
    }
  });
}

std::vector<int64_t> groups_by_position(int64_t cols, int64_t gs, bool static_groups,
                                        const at::Tensor& perm) {
  std::vector<int64_t> group_of(cols);
  const int64_t* pp = perm.defined() ? perm.data_ptr<int64_t>() : nullptr;
  for (int64_t p = 0; p < cols; ++p) {
    // Static groups belong to original columns; dynamic ones to processing positions.
    const int64_t column = (static_groups && pp) ? pp[p] : p;
    group_of[p] = column / gs;
  }
  return group_of;
}

at::Tensor make_g_idx(int64_t cols, int64_t gs, bool by_position, const at::Tensor& invperm) {
  at::Tensor g_idx = at::empty({cols}, at::kInt);
  int32_t* out = g_idx.data_ptr<int32_t>();
  const int64_t* inv = by_position ? invperm.data_ptr<int64_t>() : nullptr;
  for (int64_t j = 0; j < cols; ++j) {
    out[j] = static_cast<int32_t>((inv ? inv[j] : j) / gs);
  }
  return g_idx;
}

// [cols, padded rows] in processing order -> [rows, cols] in the original column order.
at::Tensor to_weight_layout(const at::Tensor& t, int64_t rows, const at::Tensor& invperm) {
  const at::Tensor ordered = invperm.defined() ? t.index_select(0, invperm) : t;
  return ordered.narrow(1, 0, rows).t().contiguous();
}

// Copies the lower triangle of the square n x n matrix at `m` (row stride `stride`) onto its upper
// triangle, in 64x64 blocks so that the column-wise reads stay in cache.
void mirror_lower_to_upper(float* m, int64_t n, int64_t stride) {
  constexpr int64_t kBlock = 64;
  for (int64_t ib = 0; ib < n; ib += kBlock) {
    for (int64_t jb = ib; jb < n; jb += kBlock) {
      for (int64_t i = ib; i < std::min(ib + kBlock, n); ++i) {
        for (int64_t j = std::max(jb, i + 1); j < std::min(jb + kBlock, n); ++j) {
          m[i * stride + j] = m[j * stride + i];
        }
      }
    }
  }
}

// h[r, c] = h[r, c] * keep + p[r, c] for the rows x cols tile at h (row stride h_stride), rounded
// twice as the reference's `H *= keep; H += P` does (this file is built without FMA contraction);
// lower_only: only c <= r (a diagonal tile, whose p has only its lower triangle).
void scale_and_add(float* h, int64_t h_stride, float keep, const float* p, int64_t rows,
                   int64_t cols, bool lower_only) {
  at::parallel_for(0, rows, 64, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      float* hr = h + r * h_stride;
      const float* pr = p + r * cols;
      const int64_t n = lower_only ? r + 1 : cols;
      for (int64_t c = 0; c < n; ++c) {
        const float scaled = hr[c] * keep;
        hr[c] = scaled + pr[c];
      }
    }
  });
}

}  // namespace

// The blocked rank-k update: a symmetric rank-k update (BLAS ssyrk) on each diagonal tile and a
// GEMM on each tile below it, so exactly half of a full XᵀX's products are computed. A 4096-column
// layer is one ssyrk (7.1 s for 128 x 512 tokens here; 2048-wide tiles, two ssyrk and a GEMM,
// took 8.7 s). The tile bounds the product buffer to 64 MiB (a whole one would be 485 MiB for an
// 11008-wide down_proj).
HessianAccumulator::HessianAccumulator(int64_t columns, int64_t tile)
    : columns_(columns), tile_(tile) {
  if (columns <= 0) fail("a Hessian needs a positive column count, not " + std::to_string(columns));
  if (tile <= 0) fail("a Hessian tile needs a positive width, not " + std::to_string(tile));
  h_ = at::zeros({columns, columns}, at::kFloat);
}

void HessianAccumulator::add_batch(const at::Tensor& input) {
  if (!input.defined() || !input.is_floating_point() || (input.dim() != 2 && input.dim() != 3) ||
      input.size(-1) != columns_) {
    fail("add_batch expects a floating [B, T, " + std::to_string(columns_) + "] or [T, " +
         std::to_string(columns_) + "] input, not " +
         (input.defined() ? shape_of(input) : std::string("undefined")));
  }
  const int64_t batch = input.dim() == 3 ? input.size(0) : 1;  // sequences, not tokens
  if (batch == 0) return;
  const at::Tensor x = input.reshape({-1, columns_}).to(at::kFloat).contiguous();
  const double keep = static_cast<double>(samples_) / static_cast<double>(samples_ + batch);
  samples_ += batch;
  const at::Tensor xs = at::mul(x, std::sqrt(2.0 / static_cast<double>(samples_)));
  // Only tiles on or below the diagonal. Each product goes through a buffer, as `H += XsᵀXs` does,
  // so each element is rounded the way the reference rounds it: a sum from zero of the same
  // products in token order (bit for bit under the netlib BLAS the vectors were made with).
  // One buffer per thread, reused by every accumulator: faulting 64 MiB of fresh pages in costs
  // ~0.2 s, as much as a batch's products.
  thread_local std::vector<float> product_buffer;
  const int64_t product_size = std::min(tile_, columns_) * std::min(tile_, columns_);
  if (static_cast<int64_t>(product_buffer.size()) < product_size)
    product_buffer.resize(static_cast<size_t>(product_size));
  const at::Tensor product = at::from_blob(product_buffer.data(), {product_size}, h_.options());
  const float* xs_data = xs.data_ptr<float>();
  const float keep_f = static_cast<float>(keep);  // a Python float times a float32 tensor
  const int64_t tokens = xs.size(0);
  for (int64_t i0 = 0; i0 < columns_; i0 += tile_) {
    const int64_t ni = std::min(tile_, columns_ - i0);
    const at::Tensor xi = xs.narrow(1, i0, ni);
    for (int64_t j0 = 0; j0 <= i0; j0 += tile_) {
      const int64_t nj = std::min(tile_, columns_ - j0);
      at::Tensor p = product.narrow(0, 0, ni * nj).view({ni, nj});
      if (i0 == j0) {
        // Row-major p's lower triangle is column-major's upper one; xs's columns i0.. read as a
        // column-major [ni, tokens] matrix with leading dimension `columns_`.
        cblas_ssyrk(CblasColMajor, CblasUpper, CblasNoTrans, static_cast<int>(ni),
                    static_cast<int>(tokens), 1.0f, xs_data + i0, static_cast<int>(columns_), 0.0f,
                    p.data_ptr<float>(), static_cast<int>(ni));
      } else {
        at::mm_out(p, xi.t(), xs.narrow(1, j0, nj));
      }
      scale_and_add(h_.data_ptr<float>() + i0 * columns_ + j0, columns_, keep_f,
                    p.data_ptr<float>(), ni, nj, /*lower_only=*/i0 == j0);
    }
  }
  upper_stale_ = true;
}

const at::Tensor& HessianAccumulator::hessian() const {
  if (upper_stale_) {
    // Also inside the diagonal tiles: an optimized BLAS need not round XᵢᵀXⱼ and XⱼᵀXᵢ alike, and
    // a symmetric H (what a reference BLAS gives) keeps act-order's permuted H independent of it.
    mirror_lower_to_upper(h_.data_ptr<float>(), columns_, columns_);
    upper_stale_ = false;
  }
  return h_;
}

GptqResult quantize_layer(const at::Tensor& weight, at::Tensor hessian, const GptqOptions& o) {
  check_options(o);
  check_shapes(weight, hessian);
  const int64_t rows = weight.size(0), cols = weight.size(1);
  const int64_t padded = (rows + kRowChunk - 1) / kRowChunk * kRowChunk;
  const bool grouped = o.group_size > 0;
  const int64_t gs = grouped ? o.group_size : cols;
  const bool static_groups = o.static_groups && grouped;
  const int64_t groups = (cols + gs - 1) / gs;
  const Grid grid{static_cast<float>((1 << o.bits) - 1), o.sym, o.mse,
                  static_cast<float>(o.min_zero)};

  at::Tensor wt = at::zeros({cols, padded}, at::kFloat);
  wt.narrow(1, 0, rows).copy_(weight.t());
  at::Tensor h = hessian.to(at::kFloat).contiguous();  // may share the caller's storage: read only
  hessian = at::Tensor();
  if (!all_finite(wt)) fail("the weight " + shape_of(weight) + " contains NaN or Inf");
  if (!all_finite(h)) {
    fail("the Hessian contains NaN or Inf (were the calibration activations finite?)");
  }

  GroupTable table{at::zeros({groups, padded}, at::kFloat), at::zeros({groups, padded}, at::kFloat),
                   padded};
  // Per-channel parameters come from W before its dead columns are zeroed (reference order).
  if (!grouped) find_params(wt, 0, cols, grid, table, 0);
  std::vector<int64_t> dead = zero_dead_columns(wt, h);
  if (static_groups) {
    for (int64_t g = 0; g < groups; ++g) {
      find_params(wt, g * gs, std::min((g + 1) * gs, cols), grid, table, g);
    }
  }

  at::Tensor perm, invperm;
  if (o.act_order) {
    perm = at::argsort(live_diagonal(h, dead), /*dim=*/0, /*descending=*/true);
    wt = wt.index_select(0, perm);
    h = h.index_select(0, perm).index_select(1, perm);
    invperm = at::argsort(perm);
    for (int64_t& d : dead)
      d = invperm[d].item<int64_t>();
  }

  InverseFactor factor = upper_inverse_factor(h, dead, o.percdamp);
  h = at::Tensor();
  const at::Tensor& u = factor.u;
  const std::vector<int64_t> group_of = groups_by_position(cols, gs, static_groups, perm);

  at::Tensor qt = at::empty({cols, padded}, at::kFloat);
  at::Tensor codes = at::empty({cols, padded}, at::kByte);
  const int64_t max_count = std::min(o.blocksize, cols);
  at::Tensor err = at::empty({max_count * padded}, at::kFloat);
  // The trailing products go into one reused buffer: a fresh 64 MB tensor per block spent more time
  // in page faults than the GEMM did.
  at::Tensor product = at::empty({std::max<int64_t>(cols - max_count, 0) * padded}, at::kFloat);
  for (int64_t i1 = 0; i1 < cols; i1 += o.blocksize) {
    const int64_t i2 = std::min(i1 + o.blocksize, cols), count = i2 - i1;
    // Dynamic groups starting in this block read the global W, which has the earlier blocks'
    // updates but none of this block's (the gs < blocksize quirk), so they can all be found now.
    if (grouped && !static_groups) {
      for (int64_t p = (i1 + gs - 1) / gs * gs; p < i2; p += gs) {
        find_params(wt, p, std::min(p + gs, cols), grid, table, p / gs);
      }
    }
    const at::Tensor u1t = u.narrow(0, i1, count).narrow(1, i1, count).t().contiguous();
    const at::Tensor block_err = err.narrow(0, 0, count * padded).view({count, padded});
    solve_block(Block{i1, count, padded, grid.maxq, u1t.data_ptr<float>(), group_of.data(),
                      table.scale.data_ptr<float>(), table.zero.data_ptr<float>(),
                      wt.data_ptr<float>(), block_err.data_ptr<float>(), qt.data_ptr<float>(),
                      codes.data_ptr<uint8_t>()});
    if (i2 < cols) {
      // W[:, i2:] -= Err1 · U[i1:i2, i2:], transposed: one GEMM, then one subtraction.
      at::Tensor update = product.narrow(0, 0, (cols - i2) * padded).view({cols - i2, padded});
      at::mm_out(update, u.narrow(0, i1, count).narrow(1, i2, cols - i2).t(), block_err);
      wt.narrow(0, i2, cols - i2).sub_(update);
    }
  }
  if (!all_finite(qt)) fail("the solve produced NaN or Inf (is the Hessian badly scaled?)");

  GptqResult result;
  result.q = to_weight_layout(qt, rows, invperm);
  result.qint = to_weight_layout(codes, rows, invperm);
  result.scale = table.scale.narrow(1, 0, rows).t().contiguous();
  result.zero = table.zero.narrow(1, 0, rows).t().contiguous();
  result.g_idx = make_g_idx(cols, gs, o.act_order && !static_groups, invperm);
  result.damp = factor.damp;
  result.retries = factor.retries;
  return result;
}

}  // namespace qplug::gptq
