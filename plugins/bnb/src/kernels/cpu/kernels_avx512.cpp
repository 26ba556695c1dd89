// AVX-512 (F, BW, VL) implementations of the bnb CPU kernels, and the "avx512_bf16" set that adds
// a bfloat16 dot-product GEMV (AVX512-BF16) and an int8 matmul by vpdpbusd (AVX512-VNNI). Compiled
// with -mavx512f -mavx512bw -mavx512vl -mavx512bf16 -mavx512vnni; only called after the dispatcher
// checked the processor (BF16 and VNNI instructions appear only in gemv_4bit_bf16 and
// int8_matmul_vnni, which only the avx512_bf16 set holds). Instantiates no library template with
// out-of-line code (no std::vector: scratch buffers come from thread_scratch), so no AVX-512
// instruction can leak into other files through the linker.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_kernels.hpp"
#include "kernels/cpu/input_blocks.hpp"

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
//
// The GEMVs decode a chunk of 128 weights (64 bytes) per step. A chunk shorter than 128 (32, 64 or
// 96 weights) ends a row when K % 128 != 0. Shifting each dword (fp32) or word (bf16) of the chunk
// right by 4 s puts its nibble s in the low bits, which is all a permute reads of its index: no
// widening, no masking, one shuffle per 16 (fp32) or 32 (bf16) weights. Lane d of a dword-sized
// result covers the chunk's elements 8d..8d+7; arrange_activations puts the inputs in the order
// the nibbles come out in, so products pair up with no shuffle back to element order.

constexpr int64_t kChunk = 128;

// Up to kInputs inputs at a time share one decode of the weights.
constexpr int64_t kInputs = 4;

// Which element of a little-endian word or dword of packed codes its nibble s (bits 4s..4s+3) is:
// byte s / 2, whose high nibble holds the earlier of its two elements.
constexpr int64_t nibble_element(int64_t s) {
  return 2 * (s / 2) + 1 - s % 2;
}

// Each chunk of `size` of M inputs' K elements as kRuns runs of size / kRuns, run s holding the
// elements kRuns * i + nibble_element(s) that shift s decodes into lane (or word) i of a load,
// converted by `as`.
template <int64_t kRuns, typename Out, typename Convert>
void arrange_runs(const float* x, int64_t M, int64_t K, Out* out, Convert as) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c0 = 0; c0 < K; c0 += kChunk) {
      const int64_t size = std::min(kChunk, K - c0), lanes = size / kRuns;
      const float* in = x + m * K + c0;
      Out* dst = out + m * K + c0;
      for (int64_t s = 0; s < kRuns; ++s)
        for (int64_t i = 0; i < lanes; ++i)
          dst[s * lanes + i] = as(in[kRuns * i + nibble_element(s)]);
    }
}

// The fp32 GEMV's inputs: 8 runs per chunk, one per dword nibble.
void arrange_dword_nibbles(const float* x, int64_t M, int64_t K, float* out) {
  arrange_runs<8>(x, M, K, out, [](float v) { return v; });
}

// The bfloat16 a float holds (the caller rounded it: inputs and table are bfloat16 values).
uint16_t high_half(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  return static_cast<uint16_t>(bits >> 16);
}

// The bf16 GEMV's inputs: M rows of K bfloat16 values (in the first half of `out`'s M * K floats),
// 4 runs per chunk, one per word nibble.
void arrange_word_nibbles_bf16(const float* x, int64_t M, int64_t K, float* out) {
  arrange_runs<4>(x, M, K, reinterpret_cast<uint16_t*>(out), high_half);
}

// The absmax of each fp32 lane (lane d: elements 8d..8d+7) of a row's last chunk when it is shorter
// than 128 (32, 64 or 96 weights, K % 128 != 0): one block for blocksize >= 128, else size /
// blocksize of them, copied so that nothing past the row's last absmax is read (whole chunks use
// the loads of OneBlockPerChunk and the like below). Blocksizes are powers of 2, so block numbers
// are shifts.
struct TailChunkScales {
  __m512i lane_block;  // block of lane d, relative to the chunk's first
  int64_t blocksize;
  int block_shift;  // log2(blocksize)

  explicit TailChunkScales(int64_t bs) : blocksize(bs), block_shift(0) {
    while ((int64_t{1} << block_shift) < bs)
      ++block_shift;
    // lanes per block: blocksize / 8
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    lane_block = bs >= kChunk ? _mm512_setzero_si512() : _mm512_srli_epi32(lane, block_shift - 3);
  }

  // The chunk of `size` weights that starts at element `first` of a row whose scales are `absmax`.
  __m512 of(const float* absmax, int64_t first, int64_t size) const {
    const int64_t block = first >> block_shift;
    if (blocksize >= kChunk) return _mm512_set1_ps(absmax[block]);
    alignas(16) float blocks[4] = {};
    std::copy_n(absmax + block, size >> block_shift, blocks);
    return _mm512_permutexvar_ps(lane_block, _mm512_castps128_ps512(_mm_load_ps(blocks)));
  }
};

// Asks for the codes 8 KiB ahead of `p` (rows follow each other, so past a row's end come the next
// rows, with the interleaved layout's scales between them; past the buffer's end a prefetch is
// dropped): the hardware prefetcher alone left
// cold weights ~20% slower. Measured in one process, interleaved, on huge-page weights: 8 KiB ahead
// gave the bf16 GEMV 10-15% over 1 KiB (4 KiB: +5%, 16 KiB: as 8); the absmax stream needs none.
inline void prefetch_ahead(const uint8_t* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p + 8192), _MM_HINT_T0);
}

// The two ways a chunk is decoded and multiplied. Each adds, for kCount inputs (x: the chunk's
// arranged inputs of the first, the others K values apart), the products of one chunk of one
// weight row, times their blocks' absmax, to row[m]. kFull: 128 weights, plain loads; otherwise the
// 32, 64 or 96 that end a row, with masked loads that touch only them (lanes past the end read 0,
// so their weights add nothing). Two accumulator chains per input, so the multiplies of one chunk
// need not wait on each other.

// float32: one shift, one vpermps and one FMA per 16 weights. On Zen 5 this is near the ceiling of
// the arithmetic: a chunk takes ~8 cycles, as if shifts and permutes shared two pipes, one of which
// also takes FMAs (README, "The aim"). Indices by vpmulhuw were 7-26% slower, codes loaded
// again at four byte offsets (split cache lines) 7-12% slower.
struct Fp32Chunks {
  using Input = float;
  __m512 lut;  // the 16 code values

  template <int kCount, bool kFull>
  void add(const uint8_t* bytes, const float* x, int64_t K, int64_t size, const __m512 scale,
           __m512* row) const {
    const int64_t lanes = kFull ? 16 : size / 8;
    const __mmask16 valid = tail_mask(lanes);
    const __m512i codes =
        kFull ? _mm512_loadu_si512(bytes) : _mm512_maskz_loadu_epi32(valid, bytes);
    __m512 acc[kCount][2];
    for (int m = 0; m < kCount; ++m)
      acc[m][0] = acc[m][1] = _mm512_setzero_ps();
    for (int s = 0; s < 8; ++s) {
      const __m512 w = _mm512_permutexvar_ps(_mm512_srli_epi32(codes, 4 * s), lut);
      for (int m = 0; m < kCount; ++m) {
        const float* xs = x + m * K + s * lanes;
        const __m512 xv = kFull ? _mm512_loadu_ps(xs) : _mm512_maskz_loadu_ps(valid, xs);
        acc[m][s & 1] = _mm512_fmadd_ps(w, xv, acc[m][s & 1]);
      }
    }
    for (int m = 0; m < kCount; ++m)
      row[m] = _mm512_fmadd_ps(_mm512_add_ps(acc[m][0], acc[m][1]), scale, row[m]);
  }
};

// bfloat16 (AVX512-BF16): vpermw looks up 32 code values at once and vdpbf16ps multiplies 32 pairs
// and adds each pair's two products to a float32 lane, one instruction per 32 weights. Products of
// two bfloat16 values are exact in float32, so this adds the same products as the float32 GEMV;
// the hardware flushes denormal inputs and results to zero, which moves a sum only when inputs are
// ~1e-38.
struct Bf16Chunks {
  using Input = uint16_t;
  __m512i lut;  // the 16 code values twice: vpermw reads 5 index bits, the 5th from the next nibble

  // The same 64 bytes as 32 bfloat16 values (a copy the compiler removes; a cast would alias).
  static __m512bh as_bf16(__m512i v) {
    __m512bh r;
    std::memcpy(&r, &v, sizeof r);
    return r;
  }

  template <int kCount, bool kFull>
  void add(const uint8_t* bytes, const uint16_t* x, int64_t K, int64_t size, const __m512 scale,
           __m512* row) const {
    const int64_t words = kFull ? 32 : size / 4;
    const __mmask32 valid = words >= 32 ? ~__mmask32{0} : (__mmask32{1} << words) - 1u;
    const __m512i codes =
        kFull ? _mm512_loadu_si512(bytes) : _mm512_maskz_loadu_epi16(valid, bytes);
    __m512 acc[kCount][2];
    for (int m = 0; m < kCount; ++m)
      acc[m][0] = acc[m][1] = _mm512_setzero_ps();
    for (int s = 0; s < 4; ++s) {
      const __m512bh w = as_bf16(_mm512_permutexvar_epi16(_mm512_srli_epi16(codes, 4 * s), lut));
      for (int m = 0; m < kCount; ++m) {
        const uint16_t* xs = x + m * K + s * words;
        const __m512i xv = kFull ? _mm512_loadu_si512(xs) : _mm512_maskz_loadu_epi16(valid, xs);
        acc[m][s & 1] = _mm512_dpbf16_ps(acc[m][s & 1], w, as_bf16(xv));
      }
    }
    for (int m = 0; m < kCount; ++m)
      row[m] = _mm512_fmadd_ps(_mm512_add_ps(acc[m][0], acc[m][1]), scale, row[m]);
  }
};

// Where a whole chunk's lanes find their absmax, one type per blocksize class so that the chunk
// loop holds no branch on the blocksize. `first`: the chunk's first element in its row, whose
// scales `absmax` points at.
struct OneBlockPerChunk {  // blocksize >= 128
  int block_shift;
  __m512 of(const float* absmax, int64_t first) const {
    return _mm512_set1_ps(absmax[first >> block_shift]);
  }
};
struct TwoBlocksPerChunk {  // blocksize 64: lanes 0-7 and 8-15
  __m512 of(const float* absmax, int64_t first) const {
    const __m512i lane_block = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m128i pair = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(absmax + (first >> 6)));
    return _mm512_permutexvar_ps(lane_block, _mm512_castps128_ps512(_mm_castsi128_ps(pair)));
  }
};
struct FourBlocksPerChunk {  // blocksize 32: lanes 4b..4b+3 in block b
  __m512 of(const float* absmax, int64_t first) const {
    const __m512i lane_block = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(lane_block,
                                 _mm512_castps128_ps512(_mm_loadu_ps(absmax + (first >> 5))));
  }
};

// Keeps a GEMV loop a function of its own: inlined together into one gemv_4bit, the two loops below
// left the row-by-row loop short of registers (it reloaded a constant every chunk), and float32
// 4096 x 4096 read 7% slower than with that loop alone.
#define QPLUG_OWN_REGISTERS __attribute__((noinline))

// One weight row after another, each chunk asking for the codes 8 KiB ahead: the GEMV of one input
// whose K values fit in L1 with room for the weights' codes (kRowByRowInputBytes).
template <int kCount, typename Chunks, typename WholeChunkScales>
QPLUG_OWN_REGISTERS void gemv_row_by_row(const Chunks& chunks, const WholeChunkScales& whole,
                                         const TailChunkScales& tail,
                                         const typename Chunks::Input* x_arranged, int64_t K,
                                         const FourBitRows& w, int64_t first_row, int64_t last_row,
                                         float* y, int64_t y_stride) {
  const int64_t full_end = K / kChunk * kChunk;
  for (int64_t o = first_row; o < last_row; ++o) {
    __m512 row[kCount];
    for (int m = 0; m < kCount; ++m)
      row[m] = _mm512_setzero_ps();
    const uint8_t* row_bytes = w.codes + o * w.codes_stride;
    const float* scales = w.scales + o * w.scales_stride;
    for (int64_t c0 = 0; c0 < full_end; c0 += kChunk) {
      prefetch_ahead(row_bytes + c0 / 2);
      chunks.template add<kCount, true>(row_bytes + c0 / 2, x_arranged + c0, K, kChunk,
                                        whole.of(scales, c0), row);
    }
    if (full_end < K)
      chunks.template add<kCount, false>(row_bytes + full_end / 2, x_arranged + full_end, K,
                                         K - full_end, tail.of(scales, full_end, K - full_end),
                                         row);
    for (int m = 0; m < kCount; ++m)
      y[m * y_stride + o] = _mm512_reduce_add_ps(row[m]);
  }
}

// Several inputs, or one that L1 cannot hold with the codes, go kGroupRows rows at a time, a slice
// of K at a time: a slice of the inputs stays in L1 for all the group's rows (4 inputs of 4096
// floats, 64 KiB, were read from L2 once per row), and the group's rows are 16 streams, each asked
// for one slice ahead. Measured in one process, alternating, against a row at a time, weights cold
// (distinct copies of 4096 rows, 200-770 MiB in all, 2 threads, Zen 5, blocksize 64):
// - M = 4, K = 4096: float32 +44-68%, bfloat16 +50-55%; M = 16: +47%, +24-37%; M = 2: +12-20%,
//   +9%. Rows of two tensors (K = 11008), M = 4 float32: +85%.
// - M = 1, one stream (interleaved rows, or codes whose double-quantized scales were just decoded
//   into cache), K = 4096: 3-11% slower in a quiet hour, 10-21% faster in a busy one (those runs
//   cycled copies of the same bytes), so a row at a time stays there.
// - M = 1, two tensors (rows longer than the layer interleaves), by the inputs' size: float32
//   K = 8192 (32 KiB) -4%, 11008 (43 KiB) +20-22%, 14336 (56 KiB) +72%; bfloat16 8192 (16 KiB)
//   -1% to +10%, 11008 (22 KiB) -5% to -20%, 14336 (28 KiB) +7-10%. Double-quantized float32
//   K = 8192 -15%, 11008 +19%.
// Groups of 8 rows were slower than a row at a time, 32 no faster than 16.
constexpr int64_t kGroupRows = 16;

// One input of more bytes than this goes in groups of rows (see above): two thirds of L1.
constexpr int64_t kRowByRowInputBytes = 32 << 10;

// The slice of K a group's rows take in turn, in elements. Interleaved rows: the inputs' slice in
// 16 KiB of L1 whatever their type (kInputs of them: float32 1024, bfloat16 2048; at M = 4
// float32 1024 read 62% over a row at a time, 2048 44%, 4096 9%). Two streams: 512, which read
// 4096 x 11008 float32 at M = 1 as fast as 1024, and bfloat16 17% faster than 2048.
constexpr int64_t kInputSliceBytes = 16 << 10;
constexpr int64_t kTwoStreamSliceElements = 512;

template <typename Chunks>
int64_t slice_elements(const FourBitRows& w, int64_t K) {
  if (w.codes_stride == K / 2) return kTwoStreamSliceElements;
  return kInputSliceBytes / (kInputs * static_cast<int64_t>(sizeof(typename Chunks::Input)));
}

// The most bytes of scales a row's slice has: the longest slice (bfloat16 inputs, 2 bytes each) in
// the smallest blocks (32).
constexpr int64_t kMaxScaleBytesPerSlice =
    kInputSliceBytes / (kInputs * sizeof(uint16_t)) / 32 * sizeof(float);
static_assert(kMaxScaleBytesPerSlice == 256, "2048 elements in blocks of 32: four cache lines");

template <int kCount, typename Chunks, typename WholeChunkScales>
QPLUG_OWN_REGISTERS void gemv_row_groups(const Chunks& chunks, const WholeChunkScales& whole,
                                         const TailChunkScales& tail,
                                         const typename Chunks::Input* x_arranged, int64_t K,
                                         const FourBitRows& w, int64_t first_row, int64_t last_row,
                                         float* y, int64_t y_stride) {
  const int64_t full_end = K / kChunk * kChunk;
  const int64_t slice = slice_elements<Chunks>(w, K);
  // A slice's scales, at least one float (a block may span slices).
  const int64_t scale_bytes_per_slice =
      static_cast<int64_t>(sizeof(float)) * std::max<int64_t>(1, slice >> tail.block_shift);
  for (int64_t o0 = first_row; o0 < last_row; o0 += kGroupRows) {
    const int64_t rows = std::min(kGroupRows, last_row - o0);
    __m512 sums[kGroupRows][kCount];
    for (int64_t r = 0; r < rows; ++r)
      for (int m = 0; m < kCount; ++m)
        sums[r][m] = _mm512_setzero_ps();
    for (int64_t s0 = 0;; s0 += slice) {
      const int64_t s1 = std::min(s0 + slice, full_end);
      const bool last_slice = s1 == full_end;
      for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* row_bytes = w.codes + (o0 + r) * w.codes_stride;
        const float* scales = w.scales + (o0 + r) * w.scales_stride;
        // What this row reads next: its next slice, or after its last one the same row of the
        // next group (past the layer's end a prefetch is dropped).
        const uint8_t* next_codes =
            last_slice ? row_bytes + kGroupRows * w.codes_stride - s0 / 2 : row_bytes + slice / 2;
        const auto* next_scales = reinterpret_cast<const uint8_t*>(
            last_slice ? scales + kGroupRows * w.scales_stride : scales + (s1 >> tail.block_shift));
        __m512 row[kCount];
        for (int m = 0; m < kCount; ++m)
          row[m] = sums[r][m];
        for (int64_t c0 = s0; c0 < s1; c0 += kChunk) {
          _mm_prefetch(reinterpret_cast<const char*>(next_codes + c0 / 2), _MM_HINT_T0);
          chunks.template add<kCount, true>(row_bytes + c0 / 2, x_arranged + c0, K, kChunk,
                                            whole.of(scales, c0), row);
        }
        // A loop up to scale_bytes_per_slice made float32 4096 x 4096 ~25% slower than these
        // fixed, unrolled tests with the same prefetches (in a harness that logged them).
        for (int64_t b = 0; b < kMaxScaleBytesPerSlice; b += 64)
          if (b < scale_bytes_per_slice)
            _mm_prefetch(reinterpret_cast<const char*>(next_scales + b), _MM_HINT_T0);
        if (last_slice && full_end < K)
          chunks.template add<kCount, false>(row_bytes + full_end / 2, x_arranged + full_end, K,
                                             K - full_end, tail.of(scales, full_end, K - full_end),
                                             row);
        for (int m = 0; m < kCount; ++m)
          sums[r][m] = row[m];
      }
      if (last_slice) break;
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int m = 0; m < kCount; ++m)
        y[m * y_stride + o0 + r] = _mm512_reduce_add_ps(sums[r][m]);
  }
}

// The loop for kCount inputs of K values (see the two above).
template <int kCount, typename Chunks, typename WholeChunkScales>
void gemv_rows(const Chunks& chunks, const WholeChunkScales& whole, const TailChunkScales& tail,
               const typename Chunks::Input* x_arranged, int64_t K, const FourBitRows& w,
               int64_t first_row, int64_t last_row, float* y, int64_t y_stride) {
  const int64_t input_bytes = K * static_cast<int64_t>(sizeof(typename Chunks::Input));
  if (kCount == 1 && input_bytes <= kRowByRowInputBytes)
    gemv_row_by_row<kCount>(chunks, whole, tail, x_arranged, K, w, first_row, last_row, y,
                            y_stride);
  else
    gemv_row_groups<kCount>(chunks, whole, tail, x_arranged, K, w, first_row, last_row, y,
                            y_stride);
}

// All M inputs, up to kInputs at a time sharing one decode of the weights.
template <typename Chunks, typename WholeChunkScales>
void gemv_inputs_with(const Chunks& chunks, const WholeChunkScales& whole,
                      const TailChunkScales& tail, const typename Chunks::Input* x_arranged,
                      int64_t M, int64_t K, const FourBitRows& w, int64_t first_row,
                      int64_t last_row, float* y, int64_t y_stride) {
  for (int64_t m0 = 0; m0 < M; m0 += kInputs) {
    const auto* x = x_arranged + m0 * K;
    float* out = y + m0 * y_stride;
    switch (std::min(kInputs, M - m0)) {
      case 1:
        gemv_rows<1>(chunks, whole, tail, x, K, w, first_row, last_row, out, y_stride);
        break;
      case 2:
        gemv_rows<2>(chunks, whole, tail, x, K, w, first_row, last_row, out, y_stride);
        break;
      case 3:
        gemv_rows<3>(chunks, whole, tail, x, K, w, first_row, last_row, out, y_stride);
        break;
      default:
        gemv_rows<4>(chunks, whole, tail, x, K, w, first_row, last_row, out, y_stride);
        break;
    }
  }
}

// Picks the whole-chunk scales of the blocksize's class once, outside every loop.
template <typename Chunks>
void gemv_inputs(const Chunks& chunks, const typename Chunks::Input* x_arranged, int64_t M,
                 int64_t K, const FourBitRows& w, int64_t blocksize, int64_t first_row,
                 int64_t last_row, float* y, int64_t y_stride) {
  const TailChunkScales tail(blocksize);
  if (blocksize >= kChunk)
    gemv_inputs_with(chunks, OneBlockPerChunk{tail.block_shift}, tail, x_arranged, M, K, w,
                     first_row, last_row, y, y_stride);
  else if (blocksize == 64)
    gemv_inputs_with(chunks, TwoBlocksPerChunk{}, tail, x_arranged, M, K, w, first_row, last_row, y,
                     y_stride);
  else
    gemv_inputs_with(chunks, FourBlocksPerChunk{}, tail, x_arranged, M, K, w, first_row, last_row,
                     y, y_stride);
}

void gemv_4bit(const float* x_arranged, int64_t M, int64_t K, const FourBitRows& w,
               int64_t blocksize, const float* table, int64_t first_row, int64_t last_row, float* y,
               int64_t y_stride) {
  gemv_inputs(Fp32Chunks{_mm512_loadu_ps(table)}, x_arranged, M, K, w, blocksize, first_row,
              last_row, y, y_stride);
}

// x_arranged from arrange_word_nibbles_bf16, table values bfloat16.
void gemv_4bit_bf16(const float* x_arranged, int64_t M, int64_t K, const FourBitRows& w,
                    int64_t blocksize, const float* table, int64_t first_row, int64_t last_row,
                    float* y, int64_t y_stride) {
  alignas(64) uint16_t words[32];
  for (int i = 0; i < 32; ++i)
    words[i] = high_half(table[i % 16]);
  gemv_inputs(Bf16Chunks{_mm512_load_si512(words)}, reinterpret_cast<const uint16_t*>(x_arranged),
              M, K, w, blocksize, first_row, last_row, y, y_stride);
}

// ---- double quantization's scales --------------------------------------------------------------

// The tests' SIMDe build emulates AVX512-VBMI as well; a real build compiles just the one function
// below for it and picks that function only where the processor has VBMI.
#ifdef QPLUG_AVX512_ON_SIMDE
#define QPLUG_VBMI_FUNCTION
bool has_vbmi() {
  return true;
}
#else
#define QPLUG_VBMI_FUNCTION __attribute__((target("avx512vbmi")))
bool has_vbmi() {
  return __builtin_cpu_supports("avx512vbmi");
}
#endif

// a * b as a float32 value of its own: under -mfma GCC may fuse an intrinsic multiply with the add
// that follows into one FMA, which rounds once and gives other bits than bitsandbytes.
inline __m512 rounded_product(__m512 a, __m512 b) {
  __m512 product = _mm512_mul_ps(a, b);
  asm("" : "+m"(product));
  return product;
}

// Where each code goes before the lookups: the byte unpacks below interleave within 128-bit lanes,
// so value q of the result takes codes 16q + 4L .. 16q + 4L + 3 from lane L; position
// 16L + 4q + r must hold code 16q + 4L + r for the floats to come out in block order.
alignas(64) constexpr uint8_t kLaneOrder[64] = {
    0,  1,  2,  3,  16, 17, 18, 19, 32, 33, 34, 35, 48, 49, 50, 51, 4,  5,  6,  7,  20, 21,
    22, 23, 36, 37, 38, 39, 52, 53, 54, 55, 8,  9,  10, 11, 24, 25, 26, 27, 40, 41, 42, 43,
    56, 57, 58, 59, 12, 13, 14, 15, 28, 29, 30, 31, 44, 45, 46, 47, 60, 61, 62, 63,
};

// 64 scales at a time, ~3x faster than scalar code in a Zen 5 harness (0.23 vs 0.6 TSC ticks per
// scale): per byte plane two vpermi2b look up that byte of the 64 codes' values among values 0-127
// and 128-255 and the code's top bit picks one; unpacks interleave the four planes into 64 floats.
// The 64 codes of a step share one nested scale (64 divides kNestedBlocksize).
QPLUG_VBMI_FUNCTION void decode_nested_scales_vbmi(const uint8_t* codes, const float* nested_absmax,
                                                   const NestedScaleMap& map, float offset,
                                                   int64_t first_block, int64_t last_block,
                                                   float* out) {
  int64_t i = std::min(last_block, (first_block + 63) / 64 * 64);
  decode_nested_scales_scalar(codes, nested_absmax, map, offset, first_block, i, out);
  __m512i lower[4][2], upper[4][2];  // plane b: values 0-127 and 128-255, 64 bytes a register
  for (int b = 0; b < 4; ++b)
    for (int h = 0; h < 2; ++h) {
      lower[b][h] = _mm512_load_si512(map.planes[b] + 64 * h);
      upper[b][h] = _mm512_load_si512(map.planes[b] + 128 + 64 * h);
    }
  const __m512i order = _mm512_load_si512(kLaneOrder);
  const __m512 add = _mm512_set1_ps(offset);
  for (; i + 64 <= last_block; i += 64) {
    const __m512 nested = _mm512_set1_ps(nested_absmax[i / kNestedBlocksize]);
    const __m512i idx = _mm512_permutexvar_epi8(order, _mm512_loadu_si512(codes + i));
    const __mmask64 top = _mm512_movepi8_mask(idx);
    __m512i plane[4];
    for (int b = 0; b < 4; ++b)
      plane[b] =
          _mm512_mask_blend_epi8(top, _mm512_permutex2var_epi8(lower[b][0], idx, lower[b][1]),
                                 _mm512_permutex2var_epi8(upper[b][0], idx, upper[b][1]));
    const __m512i low01 = _mm512_unpacklo_epi8(plane[0], plane[1]);
    const __m512i high01 = _mm512_unpackhi_epi8(plane[0], plane[1]);
    const __m512i low23 = _mm512_unpacklo_epi8(plane[2], plane[3]);
    const __m512i high23 = _mm512_unpackhi_epi8(plane[2], plane[3]);
    const __m512i values[4] = {
        _mm512_unpacklo_epi16(low01, low23), _mm512_unpackhi_epi16(low01, low23),
        _mm512_unpacklo_epi16(high01, high23), _mm512_unpackhi_epi16(high01, high23)};
    for (int q = 0; q < 4; ++q)
      _mm512_storeu_ps(out + (i - first_block) + 16 * q,
                       _mm512_add_ps(rounded_product(_mm512_castsi512_ps(values[q]), nested), add));
  }
  decode_nested_scales_scalar(codes, nested_absmax, map, offset, i, last_block,
                              out + (i - first_block));
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
// Outer products: a vector holds 16 inputs' values at one k, and each weight value is broadcast
// from the decoded tile (element order, rows kc apart). A register block of up to 8 weight rows x
// 32 inputs keeps 16 accumulators, one row's sums for 16 inputs each: 2 loads and 8 broadcasts
// feed 16 FMAs per k, and no horizontal sums are needed. The former dot-product tiles (3 inputs x
// 4 rows, 12 horizontal sums per block) took 30 ms at M=128 for 4096 x 4096 where these take
// 14-16 ms (dense fp32 at::linear: 27-32 ms), measured alternately in one process.

// One group of inputs fills one vector of floats.
static_assert(kTileInputGroup == 16, "the AVX-512 tiles hold one input group per __m512");

// The inputs in groups of kTileInputGroup, each group k-major (the group's 16 values of k
// together), inputs past M zero.
void arrange_input_groups(const float* x, int64_t M, int64_t K, float* out) {
  const int64_t groups = (M + kTileInputGroup - 1) / kTileInputGroup;
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t i = 0; i < kTileInputGroup; ++i) {
      const int64_t m = g * kTileInputGroup + i;
      float* dst = out + g * K * kTileInputGroup + i;
      for (int64_t k = 0; k < K; ++k)
        dst[k * kTileInputGroup] = m < M ? x[m * K + k] : 0.0f;
    }
}

// The block of kRows weight rows x kGroups input groups whose first input is m0: y[m, r] for
// m in [m0, min(M, m0 + 16 kGroups)), r in [0, kRows).
template <int kGroups, int kRows>
void outer_product_block(const float* x_arranged, int64_t M, int64_t K, int64_t k0, const float* w,
                         int64_t kc, int64_t m0, float* y, int64_t ldy, bool accumulate) {
  const float* x = x_arranged + (m0 / kTileInputGroup * K + k0) * kTileInputGroup;
  const int64_t group_stride = K * kTileInputGroup;
  __m512 acc[kRows][kGroups];
  for (auto& row : acc)
    for (auto& a : row)
      a = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    __m512 xv[kGroups];
    for (int g = 0; g < kGroups; ++g)
      xv[g] = _mm512_loadu_ps(x + g * group_stride + k * kTileInputGroup);
    for (int r = 0; r < kRows; ++r) {
      const __m512 wv = _mm512_set1_ps(w[r * kc + k]);
      for (int g = 0; g < kGroups; ++g)
        acc[r][g] = _mm512_fmadd_ps(wv, xv[g], acc[r][g]);
    }
  }
  alignas(64) float sums[kRows][kGroups * kTileInputGroup];
  for (int r = 0; r < kRows; ++r)
    for (int g = 0; g < kGroups; ++g)
      _mm512_store_ps(&sums[r][g * kTileInputGroup], acc[r][g]);
  const int64_t inputs = std::min<int64_t>(kGroups * kTileInputGroup, M - m0);
  for (int64_t i = 0; i < inputs; ++i) {
    float* out = y + (m0 + i) * ldy;
    for (int r = 0; r < kRows; ++r)
      out[r] = accumulate ? out[r] + sums[r][i] : sums[r][i];
  }
}

// All inputs against kRows weight rows, two groups at a time (one for an odd last group).
template <int kRows>
void outer_product_rows(const float* x_arranged, int64_t M, int64_t K, int64_t k0, const float* w,
                        int64_t kc, float* y, int64_t ldy, bool accumulate) {
  for (int64_t m0 = 0; m0 < M; m0 += 2 * kTileInputGroup) {
    if (M - m0 > kTileInputGroup)
      outer_product_block<2, kRows>(x_arranged, M, K, k0, w, kc, m0, y, ldy, accumulate);
    else
      outer_product_block<1, kRows>(x_arranged, M, K, k0, w, kc, m0, y, ldy, accumulate);
  }
}

void gemm_tile(const float* x_arranged, int64_t M, int64_t K, int64_t k0, const float* w,
               int64_t rows, int64_t kc, float* y, int64_t ldy, bool accumulate) {
  // Rows in blocks of 8, the rest as 4 + 2 + 1.
  for (int64_t r0 = 0; r0 < rows;) {
    const int64_t left = rows - r0;
    const float* wr = w + r0 * kc;
    float* yr = y + r0;
    if (left >= 8) {
      outer_product_rows<8>(x_arranged, M, K, k0, wr, kc, yr, ldy, accumulate);
      r0 += 8;
    } else if (left >= 4) {
      outer_product_rows<4>(x_arranged, M, K, k0, wr, kc, yr, ldy, accumulate);
      r0 += 4;
    } else if (left >= 2) {
      outer_product_rows<2>(x_arranged, M, K, k0, wr, kc, yr, ldy, accumulate);
      r0 += 2;
    } else {
      outer_product_rows<1>(x_arranged, M, K, k0, wr, kc, yr, ldy, accumulate);
      r0 += 1;
    }
  }
}

// vcvtps2ph rounds to nearest even, like x.to(float16).
void round_to_float16(const float* x, int64_t n, float* out) {
  const auto round16 = [](__m512 v) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  };
  const int64_t full_end = n / 16 * 16;
  for (int64_t i = 0; i < full_end; i += 16)
    _mm512_storeu_ps(out + i, round16(_mm512_loadu_ps(x + i)));
  if (full_end < n) {
    const __mmask16 mask = tail_mask(n - full_end);
    _mm512_mask_storeu_ps(out + full_end, mask, round16(_mm512_maskz_loadu_ps(mask, x + full_end)));
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

// LLM.int8 with AVX512-VNNI (the avx512_bf16 set: every processor with AVX512-BF16 has it).
// vpdpbusd multiplies 64 unsigned bytes by 64 signed ones and adds them in fours to 16 int32 lanes:
// 64 multiply-adds per instruction where the widening path above does 32 in four. The inputs are
// made unsigned by adding 128 (a ^ 0x80), which adds 128 * sum_k b[o, k] to every sum of row o:
// row_sums, computed at load (each call used to take them in a pass of vpdpbusd of ones by the
// rows: 12-15% of a cold M = 1 call in a two-thread harness). vpdpbusd wraps modulo 2^32, and the
// exact result fits in int32 (|a|, |b| <= 127), so subtracting in uint32 restores it exactly.

// Weight rows and inputs per register block: 16 accumulators, 4 row loads and 4 input loads per
// 16 vpdpbusd.
constexpr int kInt8Rows = 4;
constexpr int kInt8Inputs = 4;

// The M x K inputs + 128, in a per-thread buffer reused across calls.
const uint8_t* unsigned_inputs(const int8_t* a, int64_t count) {
  auto* shifted = static_cast<uint8_t*>(
      thread_scratch(ScratchSlot::kUnsignedInt8Inputs, static_cast<size_t>(count)));
  for (int64_t i = 0; i < count; ++i)
    shifted[i] = static_cast<uint8_t>(a[i]) ^ 0x80u;
  return shifted;
}

// The sum of v's 16 lanes modulo 2^32. (_mm512_reduce_add_epi32 here trips a false "used
// uninitialized" warning inside GCC 12's headers.)
inline uint32_t lane_sum(__m512i v) {
  alignas(64) uint32_t lanes[16];
  _mm512_store_si512(lanes, v);
  uint32_t sum = 0;
  for (uint32_t lane : lanes)
    sum += lane;
  return sum;
}

inline __mmask64 byte_mask(int64_t count) {
  return count >= 64 ? ~__mmask64{0} : (__mmask64{1} << count) - 1u;
}

// One step of 64 values (kFull) or the K % 64 that end the rows (masked loads read zeros past
// them, which add nothing).
template <int kRows, int kCount, bool kFull>
inline void int8_step(const uint8_t* a_u, const int8_t* b, int64_t K, int64_t k,
                      __m512i (&acc)[kRows][kCount]) {
  const __mmask64 valid = byte_mask(K - k);
  __m512i w[kRows];
  for (int r = 0; r < kRows; ++r)
    w[r] =
        kFull ? _mm512_loadu_si512(b + r * K + k) : _mm512_maskz_loadu_epi8(valid, b + r * K + k);
  for (int c = 0; c < kCount; ++c) {
    const uint8_t* in = a_u + c * K + k;
    const __m512i x = kFull ? _mm512_loadu_si512(in) : _mm512_maskz_loadu_epi8(valid, in);
    for (int r = 0; r < kRows; ++r)
      acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], x, w[r]);
  }
}

// out[c * out_stride + r] for kRows rows from b and kCount inputs from a_u (unsigned).
template <int kRows, int kCount>
void int8_block(const uint8_t* a_u, const int8_t* b, int64_t K, const int32_t* row_sums,
                int32_t* out, int64_t out_stride) {
  __m512i acc[kRows][kCount];
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < kCount; ++c)
      acc[r][c] = _mm512_setzero_si512();
  const int64_t full_end = K / 64 * 64;
  for (int64_t k = 0; k < full_end; k += 64)
    int8_step<kRows, kCount, true>(a_u, b, K, k, acc);
  if (full_end < K) int8_step<kRows, kCount, false>(a_u, b, K, full_end, acc);
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < kCount; ++c) {
      out[c * out_stride + r] =
          static_cast<int32_t>(lane_sum(acc[r][c]) - 128u * static_cast<uint32_t>(row_sums[r]));
    }
}

// kRows rows (row_sums: theirs) against every input, kInt8Inputs at a time.
template <int kRows>
void int8_rows(const uint8_t* a_u, int64_t M, int64_t K, const int8_t* b, const int32_t* row_sums,
               int32_t* out, int64_t out_stride) {
  for_each_input_block<kInt8Inputs>(M, [&](int64_t m, auto inputs) {
    int8_block<kRows, decltype(inputs)::value>(a_u + m * K, b, K, row_sums, out + m * out_stride,
                                               out_stride);
  });
}

// Each thread of the layer's parallel loop shifts all M x K inputs itself (512 KiB at M = 128, K =
// 4096: microseconds, against milliseconds of multiplies), which keeps the interface that of the
// other sets.
void int8_matmul_vnni(const int8_t* a, int64_t M, int64_t K, const int8_t* b,
                      const int32_t* row_sums, int64_t first_row, int64_t last_row, int32_t* out,
                      int64_t out_stride) {
  const uint8_t* a_u = unsigned_inputs(a, M * K);
  int64_t o = first_row;
  for (; o + kInt8Rows <= last_row; o += kInt8Rows)
    int8_rows<kInt8Rows>(a_u, M, K, b + o * K, row_sums + o, out + o, out_stride);
  for (; o < last_row; ++o)
    int8_rows<1>(a_u, M, K, b + o * K, row_sums + o, out + o, out_stride);
}

// LLM.int8 without VNNI (the avx512 set: Skylake servers). vpmaddwd multiplies int16 pairs
// exactly, so both operands are widened: the inputs once per call into a per-thread buffer, each
// weight row as it is loaded (vpmovsxbw), once per block of kInt8Rows x kInt8Inputs as above: 4
// row loads, 4 input loads and 16 vpmaddwd per 32 values of k (the old kernel widened both
// operands for every row and input).

// The M x K inputs as int16, rows K32 (K rounded down to 32) apart: what the vector loop reads.
const int16_t* widened_inputs(const int8_t* a, int64_t M, int64_t K, int64_t K32) {
  auto* wide = static_cast<int16_t*>(
      thread_scratch(ScratchSlot::kWideInt8Inputs, static_cast<size_t>(M * K32) * sizeof(int16_t)));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K32; k += 32)
      _mm512_store_si512(wide + m * K32 + k, _mm512_cvtepi8_epi16(_mm256_loadu_si256(
                                                 reinterpret_cast<const __m256i*>(a + m * K + k))));
  return wide;
}

// out[i * out_stride + r] = sum_{k < K32} a[i, k] * b[r, k] for kRows weight rows b (K apart) and
// kInputs inputs (wide: the widened inputs, K32 apart).
template <int kRows, int kInputs>
void widened_int8_block(const int16_t* wide, int64_t K, int64_t K32, const int8_t* b, int32_t* out,
                        int64_t out_stride) {
  __m512i acc[kRows][kInputs];
  for (int r = 0; r < kRows; ++r)
    for (int i = 0; i < kInputs; ++i)
      acc[r][i] = _mm512_setzero_si512();
  for (int64_t k = 0; k < K32; k += 32) {
    __m512i w[kRows];
    for (int r = 0; r < kRows; ++r)
      w[r] =
          _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + r * K + k)));
    for (int i = 0; i < kInputs; ++i) {
      const __m512i x = _mm512_load_si512(wide + i * K32 + k);
      for (int r = 0; r < kRows; ++r)
        acc[r][i] = _mm512_add_epi32(acc[r][i], _mm512_madd_epi16(w[r], x));
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int i = 0; i < kInputs; ++i)
      out[i * out_stride + r] = static_cast<int32_t>(lane_sum(acc[r][i]));
}

// kRows rows against every input, kInt8Inputs at a time.
template <int kRows>
void widened_int8_rows(const int16_t* wide, int64_t M, int64_t K, int64_t K32, const int8_t* b,
                       int32_t* out, int64_t out_stride) {
  for_each_input_block<kInt8Inputs>(M, [&](int64_t m, auto inputs) {
    widened_int8_block<kRows, decltype(inputs)::value>(wide + m * K32, K, K32, b,
                                                       out + m * out_stride, out_stride);
  });
}

void int8_matmul(const int8_t* a, int64_t M, int64_t K, const int8_t* b,
                 const int32_t* /*row_sums*/, int64_t first_row, int64_t last_row, int32_t* out,
                 int64_t out_stride) {
  const int64_t K32 = K / 32 * 32;
  const int16_t* wide = widened_inputs(a, M, K, K32);
  int64_t o = first_row;
  for (; o + kInt8Rows <= last_row; o += kInt8Rows)
    widened_int8_rows<kInt8Rows>(wide, M, K, K32, b + o * K, out + o, out_stride);
  for (; o < last_row; ++o)
    widened_int8_rows<1>(wide, M, K, K32, b + o * K, out + o, out_stride);
  // The K % 32 values after the vector loop's.
  add_int8_products(a, M, K, K32, b, first_row, last_row, out, out_stride);
}

}  // namespace

const CpuKernels& avx512_kernels() {
  // Without AVX512-BF16 a bfloat16 table runs through the float32 GEMV (one vpermps per 16
  // weights decodes any table).
  static const CpuKernels kernels = [] {
    CpuKernels k{"avx512",           quantize_4bit,
                 dequantize_4bit,    arrange_dword_nibbles,
                 gemv_4bit,          arrange_dword_nibbles,
                 gemv_4bit,          arrange_input_groups,
                 decode_tile,        gemm_tile,
                 quantize_int8_rows, int8_matmul,
                 round_to_float16,   decode_nested_scales_scalar};
    // (Intel's Skylake and Cascade Lake servers and Cooper Lake have AVX-512 without VBMI.)
    if (has_vbmi()) k.decode_nested_scales = decode_nested_scales_vbmi;
    // Through the layer, alternating, 14 cold copies of 4096 x 4096 on Zen 5 (2 threads): the GEMV
    // took 1.3, 2.4, 3.7-4.5 and 4.8-5.1 ms for 8, 16, 24 and 32 inputs, the outer-product tiles
    // 3.0, 2.9, 4.0-5.3 and 4.0-4.4 ms (64 inputs: 10.1 against 7.4); 11008 x 4096, 24 inputs: 10.6
    // against 13.3 ms. (Before the GEMV took groups of rows, 16 inputs took it 4.1-4.7 ms.)
    k.max_gemv_inputs = 24;
    k.max_gemv_inputs_bf16 = 24;
    return k;
  }();
  return kernels;
}

// AVX512-VNNI without AVX512-BF16 (Intel Cascade Lake and Ice Lake servers): the int8 matmul by
// vpdpbusd, the rest as the avx512 set.
const CpuKernels& avx512_vnni_kernels() {
  static const CpuKernels kernels = [] {
    CpuKernels k = avx512_kernels();
    k.isa = "avx512_vnni";
    k.int8_matmul = int8_matmul_vnni;
    return k;
  }();
  return kernels;
}

const CpuKernels& avx512_bf16_kernels() {
  static const CpuKernels kernels = [] {
    CpuKernels k = avx512_vnni_kernels();
    k.isa = "avx512_bf16";
    k.arrange_activations_bf16 = arrange_word_nibbles_bf16;
    k.gemv_4bit_bf16 = gemv_4bit_bf16;
    // One vdpbf16ps does 32 multiply-adds, twice an fp32 FMA, so the GEMV beat the float32 tiles
    // at every batch measured (as above): 16 inputs 1.3 ms against 2.9, 48 4.0 against 6.2, 128
    // 11.5 against 15.2, 512 37 against 48 (11008 x 4096, 48 inputs: 10.7 against 17.2 ms).
    k.max_gemv_inputs_bf16 = 512;
    return k;
  }();
  return kernels;
}

}  // namespace qplug::bnb
