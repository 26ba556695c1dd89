// The avx2_vnni kernel set: the avx2 set with the LLM.int8 matmul by AVX-VNNI's 256-bit vpdpbusd,
// for processors that have AVX-VNNI but no AVX-512 (Intel Alder Lake and later client processors).
// Compiled with -mavx2 -mfma -mf16c -mavxvnni; only called after the dispatcher checked the
// processor. Only this file's int8 matmul uses AVX-VNNI: the avx2 kernels stay as they are.
//
// vpdpbusd multiplies 32 unsigned by 32 signed bytes and adds them in fours to 8 int32 lanes: 32
// products per instruction, where the avx2 set's vpmaddwd + vpaddd make 16 in two. As in the
// avx512_vnni set, the inputs are made unsigned by adding 128 (a ^ 0x80), and 128 x the weight
// row's sum over the vector loop's k is subtracted (row_sums, computed at load, less the K % 32
// values that add_int8_products multiplies as they are); the sums wrap modulo 2^32 and the exact
// result fits in int32 (|a|, |b| <= 128), so subtracting in uint32 restores it exactly.
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/cpu_kernels.hpp"
#include "kernels/cpu/input_blocks.hpp"

namespace qplug::bnb {

namespace {

// A register block of 3 weight rows x 4 inputs: 12 accumulators + 3 rows + 1 input fill the 16
// ymm registers (vpdpbusd adds into its accumulator, so no product register is needed). GCC 12
// still leaves some rows as memory operands, which L1 serves; 3 x 3 measured 10% slower at M=128.
constexpr int kInt8Rows = 3;
constexpr int kInt8Inputs = 4;

// The first K32 (K rounded down to 32) values of each of the M inputs + 128, rows K32 apart, in a
// per-thread buffer reused across calls.
const uint8_t* unsigned_inputs(const int8_t* a, int64_t M, int64_t K, int64_t K32) {
  auto* shifted = static_cast<uint8_t*>(
      thread_scratch(ScratchSlot::kUnsignedInt8Inputs, static_cast<size_t>(M * K32)));
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K32; k += 32)
      _mm256_store_si256(
          reinterpret_cast<__m256i*>(shifted + m * K32 + k),
          _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + m * K + k)),
                           flip));
  return shifted;
}

// The sum of v's 8 lanes modulo 2^32.
inline uint32_t lane_sum(__m256i v) {
  const __m128i half = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i quarter = _mm_add_epi32(half, _mm_unpackhi_epi64(half, half));
  return static_cast<uint32_t>(
      _mm_cvtsi128_si32(_mm_add_epi32(quarter, _mm_shuffle_epi32(quarter, 1))));
}

// out[i * out_stride + r] = sum_{k < K32} a[i, k] * b[r, k] for kRows weight rows b (K apart) and
// kInputs inputs (a_u: the inputs + 128, K32 apart; vector_sums: the rows' sums over the same k).
template <int kRows, int kInputs>
void int8_block(const uint8_t* a_u, int64_t K, int64_t K32, const int8_t* b,
                const uint32_t* vector_sums, int32_t* out, int64_t out_stride) {
  __m256i acc[kRows * kInputs];
  for (__m256i& a : acc)
    a = _mm256_setzero_si256();
  for (int64_t k = 0; k < K32; k += 32) {
    __m256i w[kRows];
    for (int r = 0; r < kRows; ++r)
      w[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + r * K + k));
    for (int i = 0; i < kInputs; ++i) {
      const __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(a_u + i * K32 + k));
      for (int r = 0; r < kRows; ++r)
        acc[r * kInputs + i] = _mm256_dpbusd_avx_epi32(acc[r * kInputs + i], x, w[r]);
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int i = 0; i < kInputs; ++i)
      out[i * out_stride + r] =
          static_cast<int32_t>(lane_sum(acc[r * kInputs + i]) - 128u * vector_sums[r]);
}

// kRows rows (row_sums: their whole sums) against every input, kInt8Inputs at a time.
template <int kRows>
void int8_rows(const uint8_t* a_u, int64_t M, int64_t K, int64_t K32, const int8_t* b,
               const int32_t* row_sums, int32_t* out, int64_t out_stride) {
  uint32_t vector_sums[kRows];
  for (int r = 0; r < kRows; ++r) {
    int32_t tail = 0;
    for (int64_t k = K32; k < K; ++k)
      tail += b[r * K + k];
    vector_sums[r] = static_cast<uint32_t>(row_sums[r] - tail);
  }
  for_each_input_block<kInt8Inputs>(M, [&](int64_t m, auto inputs) {
    int8_block<kRows, decltype(inputs)::value>(a_u + m * K32, K, K32, b, vector_sums,
                                               out + m * out_stride, out_stride);
  });
}

// Each thread of the layer's parallel loop shifts all M inputs itself: microseconds against
// milliseconds of multiplies, and the interface stays that of the other sets.
void int8_matmul(const int8_t* a, int64_t M, int64_t K, const int8_t* b, const int32_t* row_sums,
                 int64_t first_row, int64_t last_row, int32_t* out, int64_t out_stride) {
  const int64_t K32 = K / 32 * 32;
  const uint8_t* a_u = unsigned_inputs(a, M, K, K32);
  int64_t o = first_row;
  for (; o + kInt8Rows <= last_row; o += kInt8Rows)
    int8_rows<kInt8Rows>(a_u, M, K, K32, b + o * K, row_sums + o, out + o, out_stride);
  for (; o < last_row; ++o)
    int8_rows<1>(a_u, M, K, K32, b + o * K, row_sums + o, out + o, out_stride);
  // The K % 32 values after the vector loop's (AVX2 has no masked byte loads).
  add_int8_products(a, M, K, K32, b, first_row, last_row, out, out_stride);
}

}  // namespace

const CpuKernels& avx2_vnni_kernels() {
  static const CpuKernels kernels = [] {
    CpuKernels k = avx2_kernels();
    k.isa = "avx2_vnni";
    k.int8_matmul = int8_matmul;
    return k;
  }();
  return kernels;
}

}  // namespace qplug::bnb
