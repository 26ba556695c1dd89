// AVX2 + FMA int4 kernels. Compiled with -mavx2 -mfma; only called after the dispatcher checked
// the processor.
#include <immintrin.h>

#include <algorithm>

#include "int4/int4_kernels.hpp"

namespace qplug::int4 {

namespace {

inline __m256 nibble(__m256i words, int k) {
  return _mm256_cvtepi32_ps(
      _mm256_and_si256(_mm256_srli_epi32(words, 4 * k), _mm256_set1_epi32(15)));
}

// 16 outputs (two registers) at a time: one 64-byte cache line of every qweight row. Each
// input's products go to 2 * kSplit accumulators (kSplit alternating over a word's 8 inputs), so
// that a single input does not wait on the FMA latency at every step.
template <int kInputs, int kSplit>
void gemv_tile(const Int4View& w, const float* x, const float* x_sums, int64_t o, float* y,
               int64_t y_stride) {
  const int64_t groups = w.in / w.group_size;
  __m256 total[kInputs][2];
  for (int m = 0; m < kInputs; ++m)
    total[m][0] = total[m][1] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m256 dot[kInputs][2][kSplit];
    for (int m = 0; m < kInputs; ++m)
      for (int h = 0; h < kSplit; ++h)
        dot[m][0][h] = dot[m][1][h] = _mm256_setzero_ps();
    for (int64_t r = g * w.group_size / 8; r < (g + 1) * w.group_size / 8; ++r) {
      const int32_t* row = w.qweight + r * w.out + o;
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
      const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 8));
      // Rows are w.out words apart: ask for the row 16 ahead (past the end it is dropped).
      _mm_prefetch(reinterpret_cast<const char*>(row + 16 * w.out), _MM_HINT_T0);
      for (int k = 0; k < 8; ++k) {
        const __m256 q0 = nibble(lo, k), q1 = nibble(hi, k);
        for (int m = 0; m < kInputs; ++m) {
          const __m256 xb = _mm256_set1_ps(x[m * w.in + r * 8 + k]);
          dot[m][0][k % kSplit] = _mm256_fmadd_ps(q0, xb, dot[m][0][k % kSplit]);
          dot[m][1][k % kSplit] = _mm256_fmadd_ps(q1, xb, dot[m][1][k % kSplit]);
        }
      }
    }
    const float* s = w.scales + g * w.out + o;
    const float* zs = w.zero_scales + g * w.out + o;
    for (int m = 0; m < kInputs; ++m)
      for (int h = 0; h < 2; ++h) {
        __m256 d = dot[m][h][0];
        for (int p = 1; p < kSplit; ++p)
          d = _mm256_add_ps(d, dot[m][h][p]);
        total[m][h] =
            _mm256_fnmadd_ps(_mm256_loadu_ps(zs + 8 * h), _mm256_set1_ps(x_sums[m * groups + g]),
                             _mm256_fmadd_ps(_mm256_loadu_ps(s + 8 * h), d, total[m][h]));
      }
  }
  for (int m = 0; m < kInputs; ++m) {
    _mm256_storeu_ps(y + m * y_stride + o, total[m][0]);
    _mm256_storeu_ps(y + m * y_stride + o + 8, total[m][1]);
  }
}

void gemv(const Int4View& w, const float* x, const float* sums, int64_t M, int64_t first,
          int64_t last, float* y, int64_t y_stride) {
  const int64_t groups = w.in / w.group_size;
  int64_t o = first;
  for (; o + 16 <= last; o += 16)
    for (int64_t m0 = 0; m0 < M; m0 += 4) {
      const float* xm = x + m0 * w.in;
      const float* sm = sums + m0 * groups;
      float* ym = y + m0 * y_stride;
      switch (std::min<int64_t>(4, M - m0)) {
        case 1:
          gemv_tile<1, 2>(w, xm, sm, o, ym, y_stride);
          break;
        case 2:
          gemv_tile<2, 1>(w, xm, sm, o, ym, y_stride);
          break;
        case 3:
          gemv_tile<3, 1>(w, xm, sm, o, ym, y_stride);
          break;
        default:
          gemv_tile<4, 1>(w, xm, sm, o, ym, y_stride);
          break;
      }
    }
  if (o < last) int4_scalar().gemv(w, x, sums, M, o, last, y, y_stride);
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
