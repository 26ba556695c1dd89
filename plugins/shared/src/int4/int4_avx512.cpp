// AVX-512 (F) int4 kernels. Compiled with -mavx512f; only called after the dispatcher checked
// the processor.
#include <immintrin.h>

#include <algorithm>

#include "int4/gemv_walk.hpp"
#include "int4/int4_kernels.hpp"

namespace qplug::int4 {

namespace {

// Code k of each word as a float: vpermps reads only the low 4 bits of each index, so the word
// shifted right by 4k indexes a table of the floats 0..15 (two instructions; shift, mask and
// convert took three).
inline __m512 nibble(__m512i words, int k, __m512 values) {
  return _mm512_permutexvar_ps(k == 0 ? words : _mm512_srli_epi32(words, 4 * k), values);
}

// How many tiles of 16 outputs one gemv pass multiplies side by side for `inputs` inputs: 4 for
// 1-2 inputs, 2 for 3-4 (so that the accumulators stay in registers).
constexpr int strip_tiles(int inputs) {
  return inputs <= 2 ? 4 : 2;
}

// kTiles tiles of 16 outputs side by side (kTiles 64-byte lines of every qweight row). Each
// input's products go to kSplit accumulators per tile (alternating over a word's 8 inputs), two
// when a full strip gives fewer than 8 independent FMA chains: one tile with one chain per input
// waited on the FMA latency at every step and read ~9 GB/s, a quarter of this speed. kSplit
// follows the full strip even where fewer tiles are multiplied (a range's edges), so an output's
// products are added in the same order whichever shape computes it: the results do not change
// with where the outputs are split between threads.
template <int kInputs, int kTiles>
void gemv_strip(const Int4View& w, const float* x, const float* x_sums, int64_t o, float* y,
                int64_t y_stride) {
  constexpr int kSplit = kInputs * strip_tiles(kInputs) >= 8 ? 1 : 2;
  const int64_t groups = w.in / w.group_size;
  static const float kCodeValues[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  const __m512 values = _mm512_loadu_ps(kCodeValues);
  __m512 total[kInputs][kTiles];
  for (int m = 0; m < kInputs; ++m)
    for (int t = 0; t < kTiles; ++t)
      total[m][t] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m512 dot[kInputs][kTiles][kSplit];
    for (int m = 0; m < kInputs; ++m)
      for (int t = 0; t < kTiles; ++t)
        for (int h = 0; h < kSplit; ++h)
          dot[m][t][h] = _mm512_setzero_ps();
    // The scales of the group after next: the hardware prefetcher, busy with the codes, left them
    // to be fetched on demand (4096 x 4096 cold, strips of 64 outputs, two threads: 211-216 us
    // against 229-250 us without).
    for (int t = 0; t < kTiles; ++t) {
      _mm_prefetch(reinterpret_cast<const char*>(w.scales + (g + 2) * w.out + o + 16 * t),
                   _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(w.zero_scales + (g + 2) * w.out + o + 16 * t),
                   _MM_HINT_T0);
    }
    for (int64_t r = g * w.group_size / 8; r < (g + 1) * w.group_size / 8; ++r) {
      __m512i words[kTiles];
      for (int t = 0; t < kTiles; ++t) {
        words[t] = _mm512_loadu_si512(w.qweight + r * w.out + o + 16 * t);
        // Rows are w.out words apart: ask for the row 16 ahead (past the end it is dropped).
        // Interleaved runs: 310-360 us against 420-490 us without, 4096 x 4096 cold.
        _mm_prefetch(reinterpret_cast<const char*>(w.qweight + (r + 16) * w.out + o + 16 * t),
                     _MM_HINT_T0);
      }
      for (int k = 0; k < 8; ++k)
        for (int t = 0; t < kTiles; ++t) {
          const __m512 q = nibble(words[t], k, values);
          for (int m = 0; m < kInputs; ++m)
            dot[m][t][k % kSplit] =
                _mm512_fmadd_ps(q, _mm512_set1_ps(x[m * w.in + r * 8 + k]), dot[m][t][k % kSplit]);
        }
    }
    for (int t = 0; t < kTiles; ++t) {
      const __m512 s = _mm512_loadu_ps(w.scales + g * w.out + o + 16 * t);
      const __m512 zs = _mm512_loadu_ps(w.zero_scales + g * w.out + o + 16 * t);
      for (int m = 0; m < kInputs; ++m) {
        __m512 d = dot[m][t][0];
        for (int h = 1; h < kSplit; ++h)
          d = _mm512_add_ps(d, dot[m][t][h]);
        total[m][t] = _mm512_fnmadd_ps(zs, _mm512_set1_ps(x_sums[m * groups + g]),
                                       _mm512_fmadd_ps(s, d, total[m][t]));
      }
    }
  }
  for (int m = 0; m < kInputs; ++m)
    for (int t = 0; t < kTiles; ++t)
      _mm512_storeu_ps(y + m * y_stride + o + 16 * t, total[m][t]);
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
    for (; o + 16 <= last_out; o += 16) {
      const __m512 q = _mm512_cvtepi32_ps(_mm512_and_si512(
          _mm512_srli_epi32(_mm512_loadu_si512(row + o), shift), _mm512_set1_epi32(15)));
      _mm512_storeu_ps(dst + (o - first_out),
                       _mm512_fmsub_ps(_mm512_loadu_ps(s + o), q, _mm512_loadu_ps(zs + o)));
    }
    for (; o < last_out; ++o)
      dst[o - first_out] = s[o] * static_cast<float>((row[o] >> shift) & 15) - zs[o];
  }
}

// As in the AVX2 file, with one 16-wide register per input: 12 inputs x 16 columns.
constexpr int64_t kTileInputs = 12;

void gemm_tile(const float* x, int64_t ldx, int64_t M, const float* wt, int64_t kc, int64_t cols,
               int64_t ldw, float* y, int64_t ldy, bool accumulate) {
  for (int64_t c0 = 0; c0 < cols; c0 += 16) {
    const int64_t valid = std::min<int64_t>(16, cols - c0);
    const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1);
    for (int64_t m0 = 0; m0 < M; m0 += kTileInputs) {
      const float* xr[kTileInputs];
      for (int64_t m = 0; m < kTileInputs; ++m)
        xr[m] = x + std::min(m0 + m, M - 1) * ldx;
      __m512 acc[kTileInputs];
      for (auto& a : acc)
        a = _mm512_setzero_ps();
      const float* wp = wt + c0;
      for (int64_t j = 0; j < kc; ++j, wp += ldw) {
        const __m512 wv = _mm512_loadu_ps(wp);
        for (int64_t m = 0; m < kTileInputs; ++m)
          acc[m] = _mm512_fmadd_ps(_mm512_set1_ps(xr[m][j]), wv, acc[m]);
      }
      // Through memory with constant indices: indexing acc by a runtime input count would make
      // GCC keep acc in memory inside the loop above.
      alignas(64) float sums[kTileInputs][16];
      for (int64_t m = 0; m < kTileInputs; ++m)
        _mm512_store_ps(sums[m], acc[m]);
      for (int64_t m = 0; m < std::min(kTileInputs, M - m0); ++m) {
        float* out = y + (m0 + m) * ldy + c0;
        const __m512 v = _mm512_load_ps(sums[m]);
        _mm512_mask_storeu_ps(out, mask,
                              accumulate ? _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, out)) : v);
      }
    }
  }
}

}  // namespace

const Int4Kernels& int4_avx512() {
  static const Int4Kernels k{"avx512", gemv, dequantize_t, gemm_tile};
  return k;
}

}  // namespace qplug::int4
