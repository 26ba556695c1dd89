// AVX-512 (F, BW, VL) implementations of the bnb CPU kernels. Compiled with -mavx512f -mavx512bw
// -mavx512vl; only called after the dispatcher checked the processor. Includes no header with
// inline code shared with other files, so no AVX-512 instruction can leak into them.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_kernels.hpp"

namespace qplug::bnb {

namespace {

// ---- 4-bit codes -------------------------------------------------------------------------------

// The number of ascending thresholds (16 entries, unused ones +inf) that y is strictly greater
// than, by binary search; NaN compares false everywhere and gets 0.
inline __m512i count_above(__m512 y, __m512 thresholds, int steps) {
  __m512i idx = _mm512_setzero_si512();
  for (int step = 1 << (steps - 1); step > 0; step >>= 1) {
    const __m512i probe = _mm512_add_epi32(idx, _mm512_set1_epi32(step - 1));
    const __m512 t = _mm512_permutexvar_ps(probe, thresholds);
    const __mmask16 above = _mm512_cmp_ps_mask(y, t, _CMP_GT_OQ);
    idx = _mm512_mask_add_epi32(idx, above, idx, _mm512_set1_epi32(step));
  }
  return idx;
}

struct CodeVectors {
  __m512 nf4_thresholds;  // 15 thresholds + inf
  __m512 fp4_thresholds;  // 7 thresholds + inf (lanes 0..7)
  __m512i fp4_codes;      // bucket -> code (lanes 0..7)
  __m512 table;
};

CodeVectors code_vectors(const FourBitCodebook& book) {
  alignas(64) float nf4[16];
  alignas(64) float fp4[16];
  alignas(64) int32_t codes[16];
  for (int i = 0; i < 15; ++i)
    nf4[i] = book.nf4_thresholds[i];
  nf4[15] = INFINITY;
  for (int i = 0; i < 16; ++i)
    fp4[i] = i < 7 ? book.fp4_thresholds[i] : INFINITY;
  for (int i = 0; i < 16; ++i)
    codes[i] = i < 8 ? book.fp4_codes[i] : 0;
  return {_mm512_load_ps(nf4), _mm512_load_ps(fp4), _mm512_load_si512(codes),
          _mm512_loadu_ps(book.table)};
}

inline __m512i codes_of(__m512 y, bool nf4, const CodeVectors& v) {
  if (nf4) return count_above(y, v.nf4_thresholds, 4);
  const __mmask16 negative = _mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 magnitude = _mm512_abs_ps(y);
  const __m512i bucket = count_above(magnitude, v.fp4_thresholds, 3);
  const __m512i code = _mm512_permutexvar_epi32(bucket, v.fp4_codes);
  return _mm512_mask_or_epi32(code, negative, code, _mm512_set1_epi32(8));
}

// 16 codes (int32 lanes) -> 8 bytes, element 2k in the high nibble of byte k.
inline __m128i pack_pairs(__m512i codes) {
  const __m512i pairs = _mm512_or_si512(_mm512_slli_epi64(codes, 4), _mm512_srli_epi64(codes, 32));
  return _mm512_cvtepi64_epi8(_mm512_and_si512(pairs, _mm512_set1_epi64(0xFF)));
}

inline __mmask16 tail_mask(int64_t count) {
  return count >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << count) - 1u);
}

void quantize_4bit(const float* x, int64_t n, int64_t blocksize, const FourBitCodebook& book,
                   int64_t first_block, int64_t last_block, uint8_t* packed, float* absmax) {
  const CodeVectors v = code_vectors(book);
  for (int64_t b = first_block; b < last_block; ++b) {
    const int64_t begin = b * blocksize;
    const int64_t count = std::min(n, begin + blocksize) - begin;
    const float* xb = x + begin;
    __m512 vmax = _mm512_setzero_ps();
    for (int64_t i = 0; i < count; i += 16)
      vmax =
          _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_maskz_loadu_ps(tail_mask(count - i), xb + i)));
    const float m = _mm512_reduce_max_ps(vmax);
    absmax[b] = m;
    const __m512 inv = _mm512_set1_ps(1.0f / m);  // inf for an all-zero block, as on the GPU
    uint8_t* out = packed + begin / 2;
    for (int64_t i = 0; i < count; i += 16) {
      // Lanes past the end hold 0, so a partial block's padding gets the code of 0 * inv.
      const __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail_mask(count - i), xb + i), inv);
      const __m128i bytes = pack_pairs(codes_of(y, book.nf4, v));
      const int64_t valid = std::min<int64_t>(8, (count - i + 1) / 2);
      _mm_mask_storeu_epi8(out + i / 2, static_cast<__mmask16>((1u << valid) - 1u), bytes);
    }
  }
}

// ---- dequantize --------------------------------------------------------------------------------

void dequantize_4bit(const uint8_t* packed, const float* absmax, int64_t n, int64_t blocksize,
                     const float* table, int64_t first_block, int64_t last_block, float* out) {
  const __m512 lut = _mm512_loadu_ps(table);
  // Interleave 16 high-nibble and 16 low-nibble values into element order.
  const __m512i first_half =
      _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i second_half =
      _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  for (int64_t b = first_block; b < last_block; ++b) {
    const int64_t begin = b * blocksize;
    const int64_t count = std::min(n, begin + blocksize) - begin;
    const __m512 scale = _mm512_set1_ps(absmax[b]);
    const uint8_t* bytes = packed + begin / 2;
    float* dst = out + (begin - first_block * blocksize);
    int64_t i = 0;
    for (; i + 32 <= count; i += 32) {
      const __m512i v =
          _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + i / 2)));
      const __m512 hi = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut);
      const __m512 lo = _mm512_permutexvar_ps(_mm512_and_si512(v, _mm512_set1_epi32(15)), lut);
      _mm512_storeu_ps(dst + i, _mm512_mul_ps(_mm512_permutex2var_ps(hi, first_half, lo), scale));
      _mm512_storeu_ps(dst + i + 16,
                       _mm512_mul_ps(_mm512_permutex2var_ps(hi, second_half, lo), scale));
    }
    for (; i < count; ++i) {
      const uint8_t byte = bytes[i / 2];
      dst[i] = table[(i % 2 == 0) ? byte >> 4 : byte & 15] * absmax[b];
    }
  }
}

// ---- fused dequantize + matrix-vector product --------------------------------------------------

// Up to kInputs inputs at a time share one decode of the weights.
constexpr int64_t kInputs = 4;

template <int kCount>
void gemv_rows(const float* x_split, int64_t K, const uint8_t* packed, const float* absmax,
               int64_t blocksize, const __m512 lut, int64_t first_row, int64_t last_row, float* y,
               int64_t y_stride) {
  const int64_t half = K / 2;
  const int64_t blocks_per_row = K / blocksize;
  const int64_t bytes_per_block = blocksize / 2;
  const __m512i low_nibble = _mm512_set1_epi32(15);
  for (int64_t o = first_row; o < last_row; ++o) {
    __m512 row[kCount];
    for (int m = 0; m < kCount; ++m)
      row[m] = _mm512_setzero_ps();
    const uint8_t* row_bytes = packed + o * half;
    const float* row_scales = absmax + o * blocks_per_row;
    for (int64_t blk = 0; blk < blocks_per_row; ++blk) {
      __m512 acc[kCount];
      for (int m = 0; m < kCount; ++m)
        acc[m] = _mm512_setzero_ps();
      const int64_t j0 = blk * bytes_per_block;
      for (int64_t j = 0; j < bytes_per_block; j += 16) {
        const __m512i v = _mm512_cvtepu8_epi32(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(row_bytes + j0 + j)));
        const __m512 w_even = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut);
        const __m512 w_odd = _mm512_permutexvar_ps(_mm512_and_si512(v, low_nibble), lut);
        for (int m = 0; m < kCount; ++m) {
          const float* xe = x_split + m * K + j0 + j;
          acc[m] = _mm512_fmadd_ps(w_even, _mm512_loadu_ps(xe), acc[m]);
          acc[m] = _mm512_fmadd_ps(w_odd, _mm512_loadu_ps(xe + half), acc[m]);
        }
      }
      const __m512 scale = _mm512_set1_ps(row_scales[blk]);
      for (int m = 0; m < kCount; ++m)
        row[m] = _mm512_fmadd_ps(acc[m], scale, row[m]);
    }
    for (int m = 0; m < kCount; ++m)
      y[m * y_stride + o] = _mm512_reduce_add_ps(row[m]);
  }
}

void gemv_4bit(const float* x_split, int64_t M, int64_t K, const uint8_t* packed,
               const float* absmax, int64_t blocksize, const float* table, int64_t first_row,
               int64_t last_row, float* y, int64_t y_stride) {
  const __m512 lut = _mm512_loadu_ps(table);
  for (int64_t m0 = 0; m0 < M; m0 += kInputs) {
    const float* x = x_split + m0 * K;
    float* out = y + m0 * y_stride;
    switch (std::min(kInputs, M - m0)) {
      case 1:
        gemv_rows<1>(x, K, packed, absmax, blocksize, lut, first_row, last_row, out, y_stride);
        break;
      case 2:
        gemv_rows<2>(x, K, packed, absmax, blocksize, lut, first_row, last_row, out, y_stride);
        break;
      case 3:
        gemv_rows<3>(x, K, packed, absmax, blocksize, lut, first_row, last_row, out, y_stride);
        break;
      default:
        gemv_rows<4>(x, K, packed, absmax, blocksize, lut, first_row, last_row, out, y_stride);
        break;
    }
  }
}

// ---- LLM.int8 ----------------------------------------------------------------------------------

// Tiles in element order: the permute-based dequantize_4bit above is already cheap.
void decode_tile(const uint8_t* packed, const float* absmax, int64_t blocksize, const float* table,
                 int64_t first_block, int64_t last_block, float* out) {
  dequantize_4bit(packed, absmax, last_block * blocksize, blocksize, table, first_block, last_block,
                  out);
}

// ---- the multiply of batched matmuls ----------------------------------------------------------
//
// As in the AVX2 file: a register tile of 3 inputs x 4 weight rows, 12 accumulators along k, tiles
// at the edges repeating their last input or row.

constexpr int64_t kTileInputs = 3;
constexpr int64_t kTileRows = 4;

// The sums of a0, a1, a2 and a3, in that order.
inline __m128 sum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  const auto half = [](__m512 v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  };
  const __m256 h =
      _mm256_hadd_ps(_mm256_hadd_ps(half(a0), half(a1)), _mm256_hadd_ps(half(a2), half(a3)));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

void gemm_tile(const float* x, int64_t ldx, int64_t M, const float* w, int64_t rows, int64_t kc,
               float* y, int64_t ldy, bool accumulate) {
  for (int64_t r0 = 0; r0 < rows; r0 += kTileRows) {
    const float* wr[kTileRows];
    for (int64_t n = 0; n < kTileRows; ++n)
      wr[n] = w + std::min(r0 + n, rows - 1) * kc;
    const int64_t valid_rows = std::min(kTileRows, rows - r0);
    for (int64_t m0 = 0; m0 < M; m0 += kTileInputs) {
      const float* xr[kTileInputs];
      for (int64_t m = 0; m < kTileInputs; ++m)
        xr[m] = x + std::min(m0 + m, M - 1) * ldx;
      __m512 acc[kTileInputs][kTileRows];
      for (auto& row : acc)
        for (auto& a : row)
          a = _mm512_setzero_ps();
      for (int64_t k = 0; k < kc; k += 16) {
        __m512 xv[kTileInputs];
        for (int64_t m = 0; m < kTileInputs; ++m)
          xv[m] = _mm512_loadu_ps(xr[m] + k);
        for (int64_t n = 0; n < kTileRows; ++n) {
          const __m512 wv = _mm512_loadu_ps(wr[n] + k);
          for (int64_t m = 0; m < kTileInputs; ++m)
            acc[m][n] = _mm512_fmadd_ps(xv[m], wv, acc[m][n]);
        }
      }
      for (int64_t m = 0; m < kTileInputs && m0 + m < M; ++m) {
        __m128 sums = sum4(acc[m][0], acc[m][1], acc[m][2], acc[m][3]);
        float* out = y + (m0 + m) * ldy + r0;
        if (valid_rows == kTileRows) {
          if (accumulate) sums = _mm_add_ps(sums, _mm_loadu_ps(out));
          _mm_storeu_ps(out, sums);
        } else {
          alignas(16) float v[4];
          _mm_store_ps(v, sums);
          for (int64_t n = 0; n < valid_rows; ++n)
            out[n] = accumulate ? out[n] + v[n] : v[n];
        }
      }
    }
  }
}

void quantize_int8_rows(const float* w, int64_t K, int64_t first_row, int64_t last_row,
                        int8_t* codes, float* scb) {
  for (int64_t r = first_row; r < last_row; ++r) {
    const float* row = w + r * K;
    __m512 vmax = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 16)
      vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_maskz_loadu_ps(tail_mask(K - k), row + k)));
    const float m = _mm512_reduce_max_ps(vmax);
    scb[r] = m;
    const __m512 factor = _mm512_set1_ps(m > 0.0f ? (1.0f / m) * 127.0f : 0.0f);
    for (int64_t k = 0; k < K; k += 16) {
      const __mmask16 mask = tail_mask(K - k);
      // cvtps_epi32 rounds half to even under the default rounding mode, like __float2int_rn.
      const __m512i q =
          _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, row + k), factor));
      _mm_mask_storeu_epi8(codes + r * K + k, mask, _mm512_cvtsepi32_epi8(q));
    }
  }
}

void int8_matmul(const int8_t* a, int64_t M, int64_t K, const int8_t* b, int64_t first_row,
                 int64_t last_row, int32_t* out, int64_t out_stride) {
  for (int64_t o = first_row; o < last_row; ++o) {
    const int8_t* brow = b + o * K;
    for (int64_t m = 0; m < M; ++m) {
      const int8_t* arow = a + m * K;
      __m512i acc = _mm512_setzero_si512();
      int64_t k = 0;
      for (; k + 32 <= K; k += 32) {
        const __m512i av =
            _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(arow + k)));
        const __m512i bv =
            _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(brow + k)));
        acc = _mm512_add_epi32(acc, _mm512_madd_epi16(av, bv));
      }
      int32_t sum = _mm512_reduce_add_epi32(acc);
      for (; k < K; ++k)
        sum += int32_t{arow[k]} * int32_t{brow[k]};
      out[m * out_stride + o] = sum;
    }
  }
}

}  // namespace

const CpuKernels& avx512_kernels() {
  // One 16-entry vpermps decodes any fp32 table; a bf16 table needs no faster path.
  static const CpuKernels kernels{"avx512",         quantize_4bit,      dequantize_4bit,
                                  arrange_even_odd, gemv_4bit,          arrange_even_odd,
                                  gemv_4bit,        copy_inputs,        decode_tile,
                                  gemm_tile,        quantize_int8_rows, int8_matmul};
  return kernels;
}

}  // namespace qplug::bnb
