// AVX2 + FMA int4 kernels. Compiled with -mavx2 -mfma; only called after the dispatcher checked
// the processor.
#include <immintrin.h>

#include <algorithm>

#include "int4/gemv_walk.hpp"
#include "int4/int4_kernels.hpp"

namespace qplug::int4 {

namespace {

inline __m256 nibble(__m256i words, int k) {
  return _mm256_cvtepi32_ps(
      _mm256_and_si256(_mm256_srli_epi32(words, 4 * k), _mm256_set1_epi32(15)));
}

// How many tiles of 16 outputs (two registers each) one gemv pass multiplies side by side for
// `inputs` inputs: a whole strip of 4 for one input, 2 for two, 1 for 3-4, so that the accumulators
// (8 of them; 6 for three inputs) fit in the 16 registers next to a code, its float and the inputs.
constexpr int strip_tiles(int inputs) {
  return inputs == 1 ? 4 : inputs == 2 ? 2 : 1;
}

// kTiles tiles of 16 outputs side by side (kTiles 64-byte lines of every qweight row), one
// accumulator per input and register: a full strip gives at least 6 independent FMA chains (a
// range's edge, a single tile for one input, only 2: slower, but rare, and the same sums in the
// same order, so results do not change with where the outputs are split between threads). Each
// step broadcasts the inputs once and decodes each register of codes once. The group totals wait
// in `total` (memory: the registers hold the group's sums), touched once per group.
template <int kInputs, int kTiles>
void gemv_strip(const Int4View& w, const float* x, const float* x_sums, int64_t o, float* y,
                int64_t y_stride) {
  constexpr int kRegs = 2 * kTiles;  // 8 outputs each
  const int64_t groups = w.in / w.group_size;
  alignas(32) float total[kInputs][kRegs * 8] = {};
  for (int64_t g = 0; g < groups; ++g) {
    __m256 dot[kInputs][kRegs];
    for (int m = 0; m < kInputs; ++m)
      for (int v = 0; v < kRegs; ++v)
        dot[m][v] = _mm256_setzero_ps();
    for (int64_t r = g * w.group_size / 8; r < (g + 1) * w.group_size / 8; ++r) {
      const int32_t* row = w.qweight + r * w.out + o;
      // Rows are w.out words apart: ask for the row 16 ahead (past the end it is dropped).
      for (int t = 0; t < kTiles; ++t)
        _mm_prefetch(reinterpret_cast<const char*>(row + 16 * w.out + 16 * t), _MM_HINT_T0);
      for (int k = 0; k < 8; ++k) {
        __m256 xb[kInputs];
        for (int m = 0; m < kInputs; ++m)
          xb[m] = _mm256_set1_ps(x[m * w.in + r * 8 + k]);
        for (int v = 0; v < kRegs; ++v) {
          const __m256 q =
              nibble(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 8 * v)), k);
          for (int m = 0; m < kInputs; ++m)
            dot[m][v] = _mm256_fmadd_ps(q, xb[m], dot[m][v]);
        }
      }
    }
    const float* s = w.scales + g * w.out + o;
    const float* zs = w.zero_scales + g * w.out + o;
    for (int m = 0; m < kInputs; ++m) {
      const __m256 x_sum = _mm256_set1_ps(x_sums[m * groups + g]);
      for (int v = 0; v < kRegs; ++v) {
        float* t = total[m] + 8 * v;
        _mm256_store_ps(t, _mm256_fnmadd_ps(_mm256_loadu_ps(zs + 8 * v), x_sum,
                                            _mm256_fmadd_ps(_mm256_loadu_ps(s + 8 * v), dot[m][v],
                                                            _mm256_load_ps(t))));
      }
    }
  }
  for (int m = 0; m < kInputs; ++m)
    for (int v = 0; v < kRegs; ++v)
      _mm256_storeu_ps(y + m * y_stride + o + 8 * v, _mm256_load_ps(total[m] + 8 * v));
}

void gemv(const Int4View& w, const float* x, const float* sums, int64_t M, int64_t first,
          int64_t last, float* y, int64_t y_stride) {
  walk_gemv<strip_tiles>(
      w, x, sums, M, first, last, y, y_stride,
      [&](auto inputs, auto tiles, int64_t o, const float* xm, const float* sm, float* ym) {
        gemv_strip<decltype(inputs)::value, decltype(tiles)::value>(w, xm, sm, o, ym, y_stride);
      });
}

void dequantize_t(const Int4View& w, int64_t first_in, int64_t last_in, int64_t first_out,
                  int64_t last_out, float* out, int64_t ld) {
  for (int64_t j = first_in; j < last_in; ++j) {
    const int64_t g = j / w.group_size;
    const int32_t* row = w.qweight + (j / 8) * w.out;
    const int shift = static_cast<int>(4 * (j % 8));
    const float* s = w.scales + g * w.out;
    const float* zs = w.zero_scales + g * w.out;
    float* dst = out + (j - first_in) * ld;
    int64_t o = first_out;
    for (; o + 8 <= last_out; o += 8) {
      const __m256 q = _mm256_cvtepi32_ps(_mm256_and_si256(
          _mm256_srli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + o)), shift),
          _mm256_set1_epi32(15)));
      _mm256_storeu_ps(dst + (o - first_out),
                       _mm256_fmsub_ps(_mm256_loadu_ps(s + o), q, _mm256_loadu_ps(zs + o)));
    }
    for (; o < last_out; ++o)
      dst[o - first_out] = s[o] * static_cast<float>((row[o] >> shift) & 15) - zs[o];
  }
}

// The multiply of batched matmuls: a register tile of 6 inputs x 16 columns, 12 accumulators, and
// per input j 2 loads of the tile and 6 broadcasts for 12 FMAs. Tiles at the input edge repeat the
// last input and keep only the valid sums.
constexpr int64_t kTileInputs = 6;

void gemm_tile(const float* x, int64_t ldx, int64_t M, const float* wt, int64_t kc, int64_t cols,
               int64_t ldw, float* y, int64_t ldy, bool accumulate) {
  for (int64_t c0 = 0; c0 < cols; c0 += 16) {
    const int64_t valid = std::min<int64_t>(16, cols - c0);
    for (int64_t m0 = 0; m0 < M; m0 += kTileInputs) {
      const float* xr[kTileInputs];
      for (int64_t m = 0; m < kTileInputs; ++m)
        xr[m] = x + std::min(m0 + m, M - 1) * ldx;
      __m256 acc[kTileInputs][2];
      for (auto& a : acc)
        a[0] = a[1] = _mm256_setzero_ps();
      const float* wp = wt + c0;
      for (int64_t j = 0; j < kc; ++j, wp += ldw) {
        const __m256 w0 = _mm256_loadu_ps(wp), w1 = _mm256_loadu_ps(wp + 8);
        for (int64_t m = 0; m < kTileInputs; ++m) {
          const __m256 xb = _mm256_broadcast_ss(xr[m] + j);
          acc[m][0] = _mm256_fmadd_ps(xb, w0, acc[m][0]);
          acc[m][1] = _mm256_fmadd_ps(xb, w1, acc[m][1]);
        }
      }
      // Through memory with constant indices: indexing acc by a runtime input count would make
      // GCC keep acc in memory inside the loop above.
      alignas(32) float sums[kTileInputs][16];
      for (int64_t m = 0; m < kTileInputs; ++m) {
        _mm256_store_ps(sums[m], acc[m][0]);
        _mm256_store_ps(sums[m] + 8, acc[m][1]);
      }
      for (int64_t m = 0; m < std::min(kTileInputs, M - m0); ++m) {
        float* out = y + (m0 + m) * ldy + c0;
        for (int64_t c = 0; c < valid; ++c)
          out[c] = accumulate ? out[c] + sums[m][c] : sums[m][c];
      }
    }
  }
}

}  // namespace

const Int4Kernels& int4_avx2() {
  static const Int4Kernels k{"avx2", gemv, dequantize_t, gemm_tile};
  return k;
}

}  // namespace qplug::int4
