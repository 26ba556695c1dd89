// AVX-512 (F) int4 kernels. Compiled with -mavx512f; only called after the dispatcher checked
// the processor.
#include <immintrin.h>

#include <algorithm>

#include "int4/int4_kernels.hpp"

namespace qplug::int4 {

namespace {

inline __m512 nibble(__m512i words, int k) {
  return _mm512_cvtepi32_ps(
      _mm512_and_si512(_mm512_srli_epi32(words, 4 * k), _mm512_set1_epi32(15)));
}

// 16 outputs (one register, one 64-byte line of every qweight row) at a time.
template <int kInputs>
void gemv_tile(const Int4View& w, const float* x, int64_t o, float* y, int64_t y_stride) {
  const int64_t groups = w.in / w.group_size;
  __m512 total[kInputs];
  for (int m = 0; m < kInputs; ++m)
    total[m] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m512 dot[kInputs];
    float sum[kInputs] = {};
    for (int m = 0; m < kInputs; ++m)
      dot[m] = _mm512_setzero_ps();
    for (int64_t r = g * w.group_size / 8; r < (g + 1) * w.group_size / 8; ++r) {
      const __m512i words = _mm512_loadu_si512(w.qweight + r * w.out + o);
      for (int k = 0; k < 8; ++k) {
        const __m512 q = nibble(words, k);
        for (int m = 0; m < kInputs; ++m) {
          const float xv = x[m * w.in + r * 8 + k];
          dot[m] = _mm512_fmadd_ps(q, _mm512_set1_ps(xv), dot[m]);
          sum[m] += xv;
        }
      }
    }
    const __m512 s = _mm512_loadu_ps(w.scales + g * w.out + o);
    const __m512 zs = _mm512_loadu_ps(w.zero_scales + g * w.out + o);
    for (int m = 0; m < kInputs; ++m)
      total[m] = _mm512_fnmadd_ps(zs, _mm512_set1_ps(sum[m]), _mm512_fmadd_ps(s, dot[m], total[m]));
  }
  for (int m = 0; m < kInputs; ++m)
    _mm512_storeu_ps(y + m * y_stride + o, total[m]);
}

void gemv(const Int4View& w, const float* x, int64_t M, int64_t first, int64_t last, float* y,
          int64_t y_stride) {
  int64_t o = first;
  for (; o + 16 <= last; o += 16)
    for (int64_t m0 = 0; m0 < M; m0 += 4) {
      const float* xm = x + m0 * w.in;
      float* ym = y + m0 * y_stride;
      switch (std::min<int64_t>(4, M - m0)) {
        case 1:
          gemv_tile<1>(w, xm, o, ym, y_stride);
          break;
        case 2:
          gemv_tile<2>(w, xm, o, ym, y_stride);
          break;
        case 3:
          gemv_tile<3>(w, xm, o, ym, y_stride);
          break;
        default:
          gemv_tile<4>(w, xm, o, ym, y_stride);
          break;
      }
    }
  if (o < last) int4_scalar().gemv(w, x, M, o, last, y, y_stride);
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
