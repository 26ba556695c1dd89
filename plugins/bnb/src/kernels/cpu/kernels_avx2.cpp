// AVX2 + FMA implementations of the bnb CPU kernels (the baseline for x86-64 machines without
// AVX-512). Compiled with -mavx2 -mfma; only called after the dispatcher checked the processor.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_kernels.hpp"
#include "kernels/cpu/input_blocks.hpp"

namespace qplug::bnb {

namespace {

// A 16-entry float lookup held in two registers: entries 0..7 and 8..15.
struct Lut16 {
  __m256 low;
  __m256 high;
};

inline __m256 lookup(const Lut16& lut, __m256i idx) {
  const __m256 a = _mm256_permutevar8x32_ps(lut.low, idx);
  const __m256 b = _mm256_permutevar8x32_ps(lut.high, idx);
  const __m256i use_high = _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7));
  return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(use_high));
}

inline __m256 abs_ps(__m256 v) {
  return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

inline float reduce_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

inline float reduce_add(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// Loads up to 8 floats; lanes past `count` are 0.
inline __m256 load_partial(const float* p, int64_t count) {
  if (count >= 8) return _mm256_loadu_ps(p);
  alignas(32) float buf[8] = {};
  std::memcpy(buf, p, sizeof(float) * count);
  return _mm256_load_ps(buf);
}

// How many of the ascending thresholds y is strictly greater than (binary search; NaN -> 0).
inline __m256i count_above16(__m256 y, const Lut16& thresholds) {
  __m256i idx = _mm256_setzero_si256();
  for (int step = 8; step > 0; step >>= 1) {
    const __m256 t = lookup(thresholds, _mm256_add_epi32(idx, _mm256_set1_epi32(step - 1)));
    const __m256i above = _mm256_castps_si256(_mm256_cmp_ps(y, t, _CMP_GT_OQ));
    idx = _mm256_add_epi32(idx, _mm256_and_si256(above, _mm256_set1_epi32(step)));
  }
  return idx;
}

inline __m256i count_above8(__m256 y, __m256 thresholds) {
  __m256i idx = _mm256_setzero_si256();
  for (int step = 4; step > 0; step >>= 1) {
    const __m256 t =
        _mm256_permutevar8x32_ps(thresholds, _mm256_add_epi32(idx, _mm256_set1_epi32(step - 1)));
    const __m256i above = _mm256_castps_si256(_mm256_cmp_ps(y, t, _CMP_GT_OQ));
    idx = _mm256_add_epi32(idx, _mm256_and_si256(above, _mm256_set1_epi32(step)));
  }
  return idx;
}

struct CodeVectors {
  Lut16 nf4_thresholds;
  __m256 fp4_thresholds;
  __m256i fp4_codes;
};

CodeVectors code_vectors(const FourBitCodebook& book) {
  alignas(32) float nf4[16];
  alignas(32) float fp4[8];
  alignas(32) int32_t codes[8];
  for (int i = 0; i < 15; ++i)
    nf4[i] = book.nf4_thresholds[i];
  nf4[15] = INFINITY;
  for (int i = 0; i < 8; ++i)
    fp4[i] = i < 7 ? book.fp4_thresholds[i] : INFINITY;
  for (int i = 0; i < 8; ++i)
    codes[i] = book.fp4_codes[i];
  return {{_mm256_load_ps(nf4), _mm256_load_ps(nf4 + 8)},
          _mm256_load_ps(fp4),
          _mm256_load_si256(reinterpret_cast<const __m256i*>(codes))};
}

inline __m256i codes_of(__m256 y, bool nf4, const CodeVectors& v) {
  if (nf4) return count_above16(y, v.nf4_thresholds);
  const __m256i negative = _mm256_castps_si256(_mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_LT_OQ));
  const __m256i bucket = count_above8(abs_ps(y), v.fp4_thresholds);
  const __m256i code = _mm256_permutevar8x32_epi32(v.fp4_codes, bucket);
  return _mm256_or_si256(code, _mm256_and_si256(negative, _mm256_set1_epi32(8)));
}

// 8 codes -> 4 bytes (element 2k in the high nibble of byte k).
inline uint32_t pack_pairs(__m256i codes) {
  const __m256i pairs = _mm256_or_si256(_mm256_slli_epi64(codes, 4), _mm256_srli_epi64(codes, 32));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), pairs);
  return static_cast<uint32_t>(lanes[0] & 0xFF) | static_cast<uint32_t>(lanes[1] & 0xFF) << 8 |
         static_cast<uint32_t>(lanes[2] & 0xFF) << 16 |
         static_cast<uint32_t>(lanes[3] & 0xFF) << 24;
}

void quantize_4bit(const float* x, int64_t n, int64_t blocksize, const FourBitCodebook& book,
                   int64_t first_block, int64_t last_block, uint8_t* packed, float* absmax) {
  const CodeVectors v = code_vectors(book);
  for (int64_t b = first_block; b < last_block; ++b) {
    const int64_t begin = b * blocksize;
    const int64_t count = std::min(n, begin + blocksize) - begin;
    const float* xb = x + begin;
    __m256 vmax = _mm256_setzero_ps();
    for (int64_t i = 0; i < count; i += 8)
      vmax = _mm256_max_ps(vmax, abs_ps(load_partial(xb + i, count - i)));
    const float m = reduce_max(vmax);
    absmax[b] = m;
    const __m256 inv = _mm256_set1_ps(1.0f / m);  // inf for an all-zero block, as on the GPU
    uint8_t* out = packed + begin / 2;
    for (int64_t i = 0; i < count; i += 8) {
      const uint32_t bytes =
          pack_pairs(codes_of(_mm256_mul_ps(load_partial(xb + i, count - i), inv), book.nf4, v));
      const int64_t valid = std::min<int64_t>(4, (count - i + 1) / 2);
      std::memcpy(out + i / 2, &bytes, static_cast<size_t>(valid));
    }
  }
}

// ---- decoding packed nibbles with byte shuffles ------------------------------------------------
//
// vpshufb looks up 32 bytes at once in a 16-entry byte table (one per 128-bit lane), far cheaper
// on Zen than 16-entry float lookups with vpermps. Four byte tables (byte k of each code value)
// and two rounds of unpacking rebuild the 32 float32 values of 16 packed bytes, bit-exact, in a
// fixed lane order: for the four groups g of 4 bytes, [odd elements of g | even elements of g].

struct ByteTables {
  __m256i byte[4];
};

ByteTables byte_tables(const float* table) {
  alignas(16) uint8_t planes[4][16];
  for (int i = 0; i < 16; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &table[i], 4);
    for (int k = 0; k < 4; ++k)
      planes[k][i] = static_cast<uint8_t>(bits >> (8 * k));
  }
  ByteTables t;
  for (int k = 0; k < 4; ++k)
    t.byte[k] =
        _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(planes[k])));
  return t;
}

inline void decode32(const uint8_t* packed, const ByteTables& t, __m256 out[4]) {
  // The 16 bytes in both lanes; the upper lane shifted right by 4 within each 32-bit word, so
  // after masking it holds the high nibbles (even elements) and the lower lane the low ones (odd
  // elements). Bits shifted in from the next byte are masked away.
  const __m256i both =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(packed)));
  const __m256i codes = _mm256_and_si256(
      _mm256_srlv_epi32(both, _mm256_set_epi32(4, 4, 4, 4, 0, 0, 0, 0)), _mm256_set1_epi8(15));
  const __m256i b0 = _mm256_shuffle_epi8(t.byte[0], codes);
  const __m256i b1 = _mm256_shuffle_epi8(t.byte[1], codes);
  const __m256i b2 = _mm256_shuffle_epi8(t.byte[2], codes);
  const __m256i b3 = _mm256_shuffle_epi8(t.byte[3], codes);
  const __m256i low_a = _mm256_unpacklo_epi8(b0, b1), high_a = _mm256_unpacklo_epi8(b2, b3);
  const __m256i low_b = _mm256_unpackhi_epi8(b0, b1), high_b = _mm256_unpackhi_epi8(b2, b3);
  out[0] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(low_a, high_a));
  out[1] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(low_a, high_a));
  out[2] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(low_b, high_b));
  out[3] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(low_b, high_b));
}

// Inputs in decode32's order, 32 elements at a time.
void arrange_activations(const float* x, int64_t M, int64_t K, float* out) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < K; c += 32)
      for (int64_t g = 0; g < 4; ++g)
        for (int64_t t = 0; t < 4; ++t) {
          const int64_t pair = c + 2 * (4 * g + t);
          out[m * K + c + 8 * g + t] = x[m * K + pair + 1];
          out[m * K + c + 8 * g + 4 + t] = x[m * K + pair];
        }
}

void dequantize_4bit(const uint8_t* packed, const float* absmax, int64_t n, int64_t blocksize,
                     const float* table, int64_t first_block, int64_t last_block, float* out) {
  const ByteTables t = byte_tables(table);
  for (int64_t b = first_block; b < last_block; ++b) {
    const int64_t begin = b * blocksize;
    const int64_t count = std::min(n, begin + blocksize) - begin;
    const __m128 scale = _mm_set1_ps(absmax[b]);
    const uint8_t* bytes = packed + begin / 2;
    float* dst = out + (begin - first_block * blocksize);
    int64_t i = 0;
    for (; i + 32 <= count; i += 32) {
      __m256 v[4];
      decode32(bytes + i / 2, t, v);
      for (int g = 0; g < 4; ++g) {
        const __m128 odd = _mm256_castps256_ps128(v[g]);
        const __m128 even = _mm256_extractf128_ps(v[g], 1);
        _mm_storeu_ps(dst + i + 8 * g, _mm_mul_ps(_mm_unpacklo_ps(even, odd), scale));
        _mm_storeu_ps(dst + i + 8 * g + 4, _mm_mul_ps(_mm_unpackhi_ps(even, odd), scale));
      }
    }
    for (; i < count; ++i) {
      const uint8_t byte = bytes[i / 2];
      dst[i] = table[(i % 2 == 0) ? byte >> 4 : byte & 15] * absmax[b];
    }
  }
}

// Whole blocks in decode32's order (arrange_activations' order), times absmax: the tiles of batched
// matmuls, whose inputs are arranged the same way, so nothing is shuffled back to element order.
void decode_tile(const uint8_t* packed, const float* absmax, int64_t blocksize, const float* table,
                 int64_t first_block, int64_t last_block, float* out) {
  const ByteTables t = byte_tables(table);
  for (int64_t b = first_block; b < last_block; ++b) {
    const __m256 scale = _mm256_set1_ps(absmax[b]);
    const uint8_t* bytes = packed + b * blocksize / 2;
    float* dst = out + (b - first_block) * blocksize;
    for (int64_t i = 0; i < blocksize; i += 32) {
      __m256 v[4];
      decode32(bytes + i / 2, t, v);
      for (int g = 0; g < 4; ++g)
        _mm256_storeu_ps(dst + i + 8 * g, _mm256_mul_ps(v[g], scale));
    }
  }
}

// ---- bf16 code tables: two byte planes ----------------------------------------------------------
//
// When every table value is a bfloat16 (low 16 bits zero: bnb_4bit_compute_dtype bfloat16), only
// the two high byte planes are looked up, and a 16-bit word becomes a float by a shift (even
// words) or a mask (odd words): 7 shuffle-port operations per 32 weights instead of 13, which is
// what bounds the fp32 GEMV on Zen. The floats come out in this order, for 32 elements of a row:
// out[g] lane t holds element 16 * (g / 2) + 2 * (g % 2) + 4 * (t % 4) + (t < 4 ? 1 : 0).

struct HighByteTables {
  __m256i byte2;
  __m256i byte3;
};

HighByteTables high_byte_tables(const float* table) {
  const ByteTables all = byte_tables(table);
  return {all.byte[2], all.byte[3]};
}

inline void decode32_bf16(const uint8_t* packed, const HighByteTables& t, __m256 out[4]) {
  const __m256i both =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(packed)));
  const __m256i codes = _mm256_and_si256(
      _mm256_srlv_epi32(both, _mm256_set_epi32(4, 4, 4, 4, 0, 0, 0, 0)), _mm256_set1_epi8(15));
  const __m256i b2 = _mm256_shuffle_epi8(t.byte2, codes);
  const __m256i b3 = _mm256_shuffle_epi8(t.byte3, codes);
  const __m256i words_low = _mm256_unpacklo_epi8(b2, b3);   // codes 0..7 of each lane
  const __m256i words_high = _mm256_unpackhi_epi8(b2, b3);  // codes 8..15
  const __m256i odd_words = _mm256_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
  out[0] = _mm256_castsi256_ps(_mm256_slli_epi32(words_low, 16));
  out[1] = _mm256_castsi256_ps(_mm256_and_si256(words_low, odd_words));
  out[2] = _mm256_castsi256_ps(_mm256_slli_epi32(words_high, 16));
  out[3] = _mm256_castsi256_ps(_mm256_and_si256(words_high, odd_words));
}

void arrange_activations_bf16(const float* x, int64_t M, int64_t K, float* out) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < K; c += 32)
      for (int64_t g = 0; g < 4; ++g)
        for (int64_t t = 0; t < 8; ++t)
          out[m * K + c + 8 * g + t] =
              x[m * K + c + 16 * (g / 2) + 2 * (g % 2) + 4 * (t % 4) + (t < 4 ? 1 : 0)];
}

constexpr int64_t kInputs = 4;

// Tables: ByteTables (any fp32 table) or HighByteTables (bf16 table); the decode is picked by type.
inline void decode(const uint8_t* packed, const ByteTables& t, __m256 out[4]) {
  decode32(packed, t, out);
}
inline void decode(const uint8_t* packed, const HighByteTables& t, __m256 out[4]) {
  decode32_bf16(packed, t, out);
}

template <int kCount, typename Tables>
void gemv_rows(const float* x, int64_t K, const FourBitRows& w, int64_t blocksize,
               const Tables& tables, int64_t first_row, int64_t last_row, float* y,
               int64_t y_stride) {
  const int64_t blocks_per_row = K / blocksize;
  for (int64_t o = first_row; o < last_row; ++o) {
    __m256 row[kCount];
    for (int m = 0; m < kCount; ++m)
      row[m] = _mm256_setzero_ps();
    const uint8_t* row_bytes = w.codes + o * w.codes_stride;
    const float* scales = w.scales + o * w.scales_stride;
    for (int64_t blk = 0; blk < blocks_per_row; ++blk) {
      // Four accumulators per input: no FMA waits on the one before it.
      __m256 acc[4][kCount];
      for (int m = 0; m < kCount; ++m)
        acc[0][m] = acc[1][m] = acc[2][m] = acc[3][m] = _mm256_setzero_ps();
      const int64_t e0 = blk * blocksize;
      for (int64_t e = e0; e < e0 + blocksize; e += 32) {
        __m256 w[4];
        decode(row_bytes + e / 2, tables, w);
        for (int m = 0; m < kCount; ++m) {
          const float* xa = x + m * K + e;
          for (int g = 0; g < 4; ++g)
            acc[g][m] = _mm256_fmadd_ps(w[g], _mm256_loadu_ps(xa + 8 * g), acc[g][m]);
        }
      }
      const __m256 scale = _mm256_set1_ps(scales[blk]);
      for (int m = 0; m < kCount; ++m)
        row[m] = _mm256_fmadd_ps(
            _mm256_add_ps(_mm256_add_ps(acc[0][m], acc[1][m]), _mm256_add_ps(acc[2][m], acc[3][m])),
            scale, row[m]);
    }
    for (int m = 0; m < kCount; ++m)
      y[m * y_stride + o] = reduce_add(row[m]);
  }
}

template <typename Tables>
void gemv_inputs(const float* x_arranged, int64_t M, int64_t K, const FourBitRows& w,
                 int64_t blocksize, const Tables& tables, int64_t first_row, int64_t last_row,
                 float* y, int64_t y_stride) {
  for (int64_t m0 = 0; m0 < M; m0 += kInputs) {
    const float* x = x_arranged + m0 * K;
    float* out = y + m0 * y_stride;
    switch (std::min(kInputs, M - m0)) {
      case 1:
        gemv_rows<1>(x, K, w, blocksize, tables, first_row, last_row, out, y_stride);
        break;
      case 2:
        gemv_rows<2>(x, K, w, blocksize, tables, first_row, last_row, out, y_stride);
        break;
      case 3:
        gemv_rows<3>(x, K, w, blocksize, tables, first_row, last_row, out, y_stride);
        break;
      default:
        gemv_rows<4>(x, K, w, blocksize, tables, first_row, last_row, out, y_stride);
        break;
    }
  }
}

void gemv_4bit(const float* x_arranged, int64_t M, int64_t K, const FourBitRows& w,
               int64_t blocksize, const float* table, int64_t first_row, int64_t last_row, float* y,
               int64_t y_stride) {
  gemv_inputs(x_arranged, M, K, w, blocksize, byte_tables(table), first_row, last_row, y, y_stride);
}

void gemv_4bit_bf16(const float* x_arranged, int64_t M, int64_t K, const FourBitRows& w,
                    int64_t blocksize, const float* table, int64_t first_row, int64_t last_row,
                    float* y, int64_t y_stride) {
  gemv_inputs(x_arranged, M, K, w, blocksize, high_byte_tables(table), first_row, last_row, y,
              y_stride);
}

// ---- the multiply of batched matmuls ----------------------------------------------------------
//
// A register tile of 3 inputs x 4 weight rows: 12 accumulators along k, 7 loads per 12 FMAs, so
// the FMA units set the pace. Tiles at the edges repeat their last input or row and keep only the
// valid sums.

constexpr int64_t kTileInputs = 3;
constexpr int64_t kTileRows = 4;

// The sums of a0, a1, a2 and a3, in that order.
inline __m128 sum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// x_arranged: arrange_tile_inputs' rows, K apart.
void gemm_tile(const float* x_arranged, int64_t M, int64_t K, int64_t k0, const float* w,
               int64_t rows, int64_t kc, float* y, int64_t ldy, bool accumulate) {
  const float* x = x_arranged + k0;
  const int64_t ldx = K;
  for (int64_t r0 = 0; r0 < rows; r0 += kTileRows) {
    const float* wr[kTileRows];
    for (int64_t n = 0; n < kTileRows; ++n)
      wr[n] = w + std::min(r0 + n, rows - 1) * kc;
    const int64_t valid_rows = std::min(kTileRows, rows - r0);
    for (int64_t m0 = 0; m0 < M; m0 += kTileInputs) {
      const float* xr[kTileInputs];
      for (int64_t m = 0; m < kTileInputs; ++m)
        xr[m] = x + std::min(m0 + m, M - 1) * ldx;
      __m256 acc[kTileInputs][kTileRows];
      for (auto& row : acc)
        for (auto& a : row)
          a = _mm256_setzero_ps();
      for (int64_t k = 0; k < kc; k += 8) {
        __m256 xv[kTileInputs];
        for (int64_t m = 0; m < kTileInputs; ++m)
          xv[m] = _mm256_loadu_ps(xr[m] + k);
        for (int64_t n = 0; n < kTileRows; ++n) {
          const __m256 wv = _mm256_loadu_ps(wr[n] + k);
          for (int64_t m = 0; m < kTileInputs; ++m)
            acc[m][n] = _mm256_fmadd_ps(xv[m], wv, acc[m][n]);
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

// F16C conversions, which round to nearest even like x.to(float16); the tail goes through a
// padded copy.
void round_to_float16(const float* x, int64_t n, float* out) {
  const auto round8 = [](__m256 v) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, round8(_mm256_loadu_ps(x + i)));
  if (i == n) return;
  alignas(32) float tail[8] = {};
  std::memcpy(tail, x + i, static_cast<size_t>(n - i) * sizeof(float));
  _mm256_store_ps(tail, round8(_mm256_load_ps(tail)));
  std::memcpy(out + i, tail, static_cast<size_t>(n - i) * sizeof(float));
}

void quantize_int8_rows(const float* w, int64_t K, int64_t first_row, int64_t last_row,
                        int8_t* codes, float* scb) {
  for (int64_t r = first_row; r < last_row; ++r) {
    const float* row = w + r * K;
    __m256 vmax = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k += 8)
      vmax = _mm256_max_ps(vmax, abs_ps(load_partial(row + k, K - k)));
    const float m = reduce_max(vmax);
    scb[r] = m;
    const __m256 factor = _mm256_set1_ps(m > 0.0f ? (1.0f / m) * 127.0f : 0.0f);
    for (int64_t k = 0; k < K; k += 8) {
      alignas(32) int32_t q[8];
      // cvtps_epi32 rounds half to even under the default rounding mode.
      _mm256_store_si256(reinterpret_cast<__m256i*>(q),
                         _mm256_cvtps_epi32(_mm256_mul_ps(load_partial(row + k, K - k), factor)));
      for (int64_t j = 0; j < 8 && k + j < K; ++j)
        codes[r * K + k + j] = static_cast<int8_t>(q[j]);
    }
  }
}

// LLM.int8 on AVX2. vpmaddwd multiplies int16 pairs exactly (vpmaddubsw, the byte form, would
// saturate), so both operands are widened: the inputs once per call into a per-thread buffer, each
// weight row as it is loaded (vpmovsxbw), once per block of inputs rather than once per input (the
// old kernel widened both operands for every row and input). A register block of 3 rows x 3 inputs
// does 3 row loads, 3 input loads and 9 vpmaddwd per 16 values of k, in 9 accumulators + 3 rows +
// 1 input + 1 product of the 16 ymm registers. 3 x 4 needs 17 and spills one accumulator; it
// measured the same (4096 x 4096, M = 16 and 128, alternating runs), and 2 x 6 and 4 x 2 were
// slower.
constexpr int kInt8Rows = 3;
constexpr int kInt8Inputs = 3;

// The M x K inputs as int16, rows K16 (K rounded down to 16) apart: what the vector loop reads.
const int16_t* widened_inputs(const int8_t* a, int64_t M, int64_t K, int64_t K16) {
  auto* wide = static_cast<int16_t*>(
      thread_scratch(ScratchSlot::kWideInt8Inputs, static_cast<size_t>(M * K16) * sizeof(int16_t)));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K16; k += 16)
      _mm256_store_si256(
          reinterpret_cast<__m256i*>(wide + m * K16 + k),
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + m * K + k))));
  return wide;
}

inline int32_t lane_sum(__m256i v) {
  const __m128i half = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i quarter = _mm_add_epi32(half, _mm_unpackhi_epi64(half, half));
  return _mm_cvtsi128_si32(_mm_add_epi32(quarter, _mm_shuffle_epi32(quarter, 1)));
}

// out[i * out_stride + r] = sum_{k < K16} a[i, k] * b[r, k] for kRows weight rows b (K apart) and
// kInputs inputs (wide: the widened inputs, K16 apart).
template <int kRows, int kInputs>
void int8_block(const int16_t* wide, int64_t K, int64_t K16, const int8_t* b, int32_t* out,
                int64_t out_stride) {
  __m256i acc[kRows][kInputs];
  for (int r = 0; r < kRows; ++r)
    for (int i = 0; i < kInputs; ++i)
      acc[r][i] = _mm256_setzero_si256();
  for (int64_t k = 0; k < K16; k += 16) {
    __m256i w[kRows];
    for (int r = 0; r < kRows; ++r)
      w[r] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + r * K + k)));
    for (int i = 0; i < kInputs; ++i) {
      const __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(wide + i * K16 + k));
      for (int r = 0; r < kRows; ++r)
        acc[r][i] = _mm256_add_epi32(acc[r][i], _mm256_madd_epi16(w[r], x));
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int i = 0; i < kInputs; ++i)
      out[i * out_stride + r] = lane_sum(acc[r][i]);
}

// kRows rows against every input, kInt8Inputs at a time.
template <int kRows>
void int8_rows(const int16_t* wide, int64_t M, int64_t K, int64_t K16, const int8_t* b,
               int32_t* out, int64_t out_stride) {
  for_each_input_block<kInt8Inputs>(M, [&](int64_t m, auto inputs) {
    int8_block<kRows, decltype(inputs)::value>(wide + m * K16, K, K16, b, out + m * out_stride,
                                               out_stride);
  });
}

void int8_matmul(const int8_t* a, int64_t M, int64_t K, const int8_t* b,
                 const int32_t* /*row_sums*/, int64_t first_row, int64_t last_row, int32_t* out,
                 int64_t out_stride) {
  const int64_t K16 = K / 16 * 16;
  const int16_t* wide = widened_inputs(a, M, K, K16);
  int64_t o = first_row;
  for (; o + kInt8Rows <= last_row; o += kInt8Rows)
    int8_rows<kInt8Rows>(wide, M, K, K16, b + o * K, out + o, out_stride);
  for (; o < last_row; ++o)
    int8_rows<1>(wide, M, K, K16, b + o * K, out + o, out_stride);
  // The K % 16 values after the vector loop's.
  add_int8_products(a, M, K, K16, b, first_row, last_row, out, out_stride);
}

}  // namespace

const CpuKernels& avx2_kernels() {
  static const CpuKernels kernels{"avx2", quantize_4bit, dequantize_4bit, arrange_activations,
                                  gemv_4bit, arrange_activations_bf16, gemv_4bit_bf16,
                                  arrange_activations, decode_tile, gemm_tile, quantize_int8_rows,
                                  int8_matmul, round_to_float16,
                                  // AVX2's gathers decoded slower than scalar code on Zen 5.
                                  decode_nested_scales_scalar};
  return kernels;
}

}  // namespace qplug::bnb
