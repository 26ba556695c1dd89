// The "avx512_amx" set: the avx512_bf16 set plus batched matmuls with bfloat16 compute and LLM.int8
// matmuls on AMX tiles (AMX-TILE, AMX-BF16, AMX-INT8: Intel Sapphire Rapids and later). Compiled
// with the AVX-512 flags and -mamx-tile -mamx-bf16 -mamx-int8; only called after the dispatcher
// checked the processor and got the kernel's permission to use the tile registers (dispatch.cpp).
//
// One tdpbf16ps multiplies a 16 x 32 bfloat16 tile by a 32 x 16 one into 16 x 16 float32 sums:
// 8192 multiply-adds in ~16 cycles. What limits it on the 2-vCPU VMs measured is loading the
// tiles: ~50 cycles per 1 KiB tileloadd even from L1, and a 2 x 2 block of sums (the most that
// 8 tile registers hold with their operands) needs 4 loads per 4 multiplies, ~260 cycles in all.
// That is still ~30 multiply-adds per cycle, 2x the float32 FMAs' peak: at M = 128 these matmuls
// take 11-12 ms for 4096 x 4096 where the float32 tiles take ~35 ms.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/cpu_kernels.hpp"

namespace qplug::bnb {

namespace {

// Weight rows per block: two A tiles of 16 rows each.
constexpr int64_t kRowBlock = 32;
// Inputs per group: two B tiles of 16 inputs each.
constexpr int64_t kInputBlock = 32;
// Columns of a decoded panel: 32 rows x 256 bfloat16 values, 16 KiB, stays in L1 while every
// input group passes over it (1024 columns, in L2, were 5-10% slower at M = 128).
constexpr int64_t kPanelDepth = 256;
// One k-step of a tile: 32 bfloat16 values of a row, 64 bytes.
constexpr int64_t kStep = 32;

// Which element of a run of 32 a panel column holds. The decode below puts a run's 16 high
// nibbles (elements 0, 2, .., 30) first and its 16 low nibbles (1, 3, .., 31) after them, so it
// needs no interleave; the inputs are arranged to match.
constexpr int64_t panel_element(int64_t column) {
  return column < 16 ? 2 * column : 2 * (column - 16) + 1;
}

// Transposes 16 x 16 dwords in 4 butterfly steps: step b swaps bit b of the row and column
// numbers (row i without bit b takes the columns with bit b from row i + b, and the other way
// round), two vpermt2d per pair of rows.
class Transpose16x16 {
 public:
  Transpose16x16() {
    for (int stage = 0; stage < 4; ++stage) {
      const int b = 8 >> stage;
      alignas(64) int32_t keep[16], swap[16];
      for (int c = 0; c < 16; ++c) {
        keep[c] = (c & b) ? 16 + c - b : c;
        swap[c] = (c & b) ? 16 + c : c + b;
      }
      keep_[stage] = _mm512_load_si512(keep);
      swap_[stage] = _mm512_load_si512(swap);
    }
  }

  void operator()(__m512i rows[16]) const {
    butterfly<0, 8>(rows);
    butterfly<1, 4>(rows);
    butterfly<2, 2>(rows);
    butterfly<3, 1>(rows);
  }

 private:
  template <int kStage, int kBit>
  void butterfly(__m512i rows[16]) const {
    for (int i = 0; i < 16; ++i)
      if ((i & kBit) == 0) {
        const __m512i low = rows[i], high = rows[i + kBit];
        rows[i] = _mm512_permutex2var_epi32(low, keep_[kStage], high);
        rows[i + kBit] = _mm512_permutex2var_epi32(low, swap_[kStage], high);
      }
  }

  __m512i keep_[4], swap_[4];
};

// Writes a 2 x 2 block of sum tiles (4 tiles of 16 rows x 16 inputs of dwords, float or int32, in
// the order the multiplies leave them: rows 0-15 x inputs 0-15, rows 0-15 x 16-31, rows 16-31 x
// 0-15, rows 16-31 x 16-31) to out[m0 + n, r0 + r] for r < rows and n < inputs. Each tile is
// transposed in registers, so an input's 16 sums are one store.
void store_sum_block(const void* sums, int64_t rows, int64_t inputs, void* out, int64_t out_stride,
                     int64_t m0, int64_t r0, const Transpose16x16& transpose) {
  for (int64_t t = 0; t < 4; ++t) {
    const int64_t row0 = (t / 2) * 16, n0 = (t % 2) * 16;
    if (row0 >= rows || n0 >= inputs) continue;
    const auto* tile = static_cast<const uint32_t*>(sums) + t * 256;
    __m512i lanes[16];
    for (int64_t r = 0; r < 16; ++r)
      lanes[r] = _mm512_loadu_si512(tile + r * 16);
    transpose(lanes);  // lanes[n]: input n's sums of rows row0..row0 + 15
    const int64_t valid_rows = std::min<int64_t>(16, rows - row0);
    const __mmask16 mask = static_cast<__mmask16>((1u << valid_rows) - 1u);
    for (int64_t n = 0; n < std::min<int64_t>(16, inputs - n0); ++n)
      _mm512_mask_storeu_epi32(static_cast<uint32_t*>(out) + (m0 + n0 + n) * out_stride + r0 + row0,
                               mask, lanes[n]);
  }
}

// B tiles: inputs (bfloat16 values, as the layer rounds them) in groups of 16, zero past M (M
// padded to whole groups of 32), each group K / 2 rows of 16 pairs: row p of a k-step pairs the
// input's values of panel columns 2p and 2p + 1.
void arrange_inputs_amx(const float* x, int64_t M, int64_t K, uint16_t* out) {
  // Word j of a k-step's 16 pairs is the high (bfloat16) half of element panel_element(j), which
  // is word 2 e + 1 of the run's 32 floats seen as 64 words.
  alignas(64) uint16_t words[32];
  for (int j = 0; j < 32; ++j)
    words[j] = static_cast<uint16_t>(2 * panel_element(j) + 1);
  const __m512i pick = _mm512_load_si512(words);
  const Transpose16x16 transpose;
  const int64_t groups = (M + kInputBlock - 1) / kInputBlock * 2;
  for (int64_t g = 0; g < groups; ++g) {
    uint16_t* group = out + g * K * 16;
    for (int64_t k0 = 0; k0 < K; k0 += kStep) {
      // Row i: input i's 16 pairs; after the transpose row p holds pair p of every input.
      __m512i rows[16];
      for (int64_t i = 0; i < 16; ++i) {
        const int64_t m = g * 16 + i;
        rows[i] = _mm512_setzero_si512();
        if (m < M) {
          const float* run = x + m * K + k0;
          rows[i] = _mm512_permutex2var_epi16(_mm512_castps_si512(_mm512_loadu_ps(run)), pick,
                                              _mm512_castps_si512(_mm512_loadu_ps(run + 16)));
        }
      }
      transpose(rows);
      for (int64_t p = 0; p < 16; ++p)
        _mm512_storeu_si512(group + (k0 / 2 + p) * 32, rows[p]);
    }
  }
}

// Rows [r0, r0 + rows) of the weight, columns [k0, k0 + kc), as bfloat16 values table[code] *
// absmax rounded to nearest even (what dequantize_4bit to bfloat16 gives), into `panel` (row r at
// r * kPanelDepth); rows past `rows` are zero.
void decode_panel(const uint8_t* packed, const float* absmax, int block_shift, const float* table,
                  int64_t K, int64_t r0, int64_t rows, int64_t k0, int64_t kc, uint16_t* panel) {
  const __m512 lut = _mm512_loadu_ps(table);
  for (int64_t r = 0; r < kRowBlock; ++r) {
    uint16_t* dst = panel + r * kPanelDepth;
    if (r >= rows) {
      std::memset(dst, 0, static_cast<size_t>(kc) * 2);
      continue;
    }
    const int64_t first = (r0 + r) * K + k0;
    const uint8_t* bytes = packed + first / 2;
    for (int64_t c = 0; c < kc; c += kStep) {
      const __m512 scale = _mm512_set1_ps(absmax[(first + c) >> block_shift]);
      const __m512i v =
          _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + c / 2)));
      const __m512 hi = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut);
      const __m512 lo = _mm512_permutexvar_ps(v, lut);  // vpermps reads the low 4 bits only
      // vcvtne2ps2bf16 rounds to nearest even (and flushes denormals, which only an absmax below
      // ~1e-36 makes); its low half comes from the second operand.
      const __m512bh both = _mm512_cvtne2ps_pbh(_mm512_mul_ps(lo, scale), _mm512_mul_ps(hi, scale));
      std::memcpy(dst + c, &both, 64);
    }
  }
}

// The tile registers' shapes: 0-3 sums (16 x 16 float32), 4-5 weight rows (16 x 32 bfloat16),
// 6-7 inputs (16 rows of 16 bfloat16 pairs). Every tile is 16 rows of 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

void configure_tiles() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.bytes_per_row[t] = 64;
    config.rows[t] = 16;
  }
  _tile_loadconfig(&config);
}

// One group of 32 inputs against the panel's 32 rows, columns [0, kc): sums in `c` (4 tiles of
// 256 floats: rows 0-15 x inputs 0-15, rows 0-15 x inputs 16-31, rows 16-31 x 0-15, 16-31 x
// 16-31), zero first or added to.
void multiply_group(const uint16_t* panel, const uint16_t* inputs, int64_t K, int64_t kc,
                    bool accumulate, float* c) {
  constexpr int64_t kPanelStride = kPanelDepth * 2, kTileStride = 64;
  if (accumulate) {
    _tile_loadd(0, c, kTileStride);
    _tile_loadd(1, c + 256, kTileStride);
    _tile_loadd(2, c + 512, kTileStride);
    _tile_loadd(3, c + 768, kTileStride);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  const uint16_t* second_inputs = inputs + K * 16;
  for (int64_t s = 0; s < kc; s += kStep) {
    _tile_loadd(4, panel + s, kPanelStride);
    _tile_loadd(5, panel + 16 * kPanelDepth + s, kPanelStride);
    _tile_loadd(6, inputs + s * 16, kTileStride);
    _tile_loadd(7, second_inputs + s * 16, kTileStride);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, kTileStride);
  _tile_stored(1, c + 256, kTileStride);
  _tile_stored(2, c + 512, kTileStride);
  _tile_stored(3, c + 768, kTileStride);
}

// y[m, o] = sum_k x[m, k] W[o, k] for rows o in [first_row, last_row), W dequantized to bfloat16.
void matmul_4bit_amx(const uint16_t* x_arranged, int64_t M, int64_t K, const uint8_t* packed,
                     const float* absmax, int64_t blocksize, const float* table, int64_t first_row,
                     int64_t last_row, float* y, int64_t ldy) {
  int block_shift = 0;
  while ((int64_t{1} << block_shift) < blocksize)
    ++block_shift;
  const int64_t groups = (M + kInputBlock - 1) / kInputBlock;
  auto* panel = static_cast<uint16_t*>(
      thread_scratch(ScratchSlot::kAmxPanel, kRowBlock * kPanelDepth * sizeof(uint16_t)));
  auto* sums = static_cast<float*>(
      thread_scratch(ScratchSlot::kAmxSums, static_cast<size_t>(groups) * 1024 * sizeof(float)));
  const Transpose16x16 transpose;
  configure_tiles();
  for (int64_t r0 = first_row; r0 < last_row; r0 += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, last_row - r0);
    for (int64_t k0 = 0; k0 < K; k0 += kPanelDepth) {
      const int64_t kc = std::min(kPanelDepth, K - k0);
      decode_panel(packed, absmax, block_shift, table, K, r0, rows, k0, kc, panel);
      for (int64_t g = 0; g < groups; ++g)
        multiply_group(panel, x_arranged + (2 * g * K + k0) * 16, K, kc, k0 > 0, sums + g * 1024);
    }
    for (int64_t g = 0; g < groups; ++g)
      store_sum_block(sums + g * 1024, rows, M - g * kInputBlock, y, ldy, g * kInputBlock, r0,
                      transpose);
  }
  _tile_release();
}

// ---- LLM.int8 on AMX-INT8 ----------------------------------------------------------------------
//
// tdpbssd multiplies a 16 x 64 tile of signed bytes by a 64 x 16 one into 16 x 16 int32 sums,
// 16384 exact multiply-adds. The A tiles are the int8 weight rows as stored (16 rows of 64 bytes, K
// apart: no decode); the inputs are laid out once per call as B tiles.

// Bytes of k per tile row, and per k-step.
constexpr int64_t kInt8Step = 64;
// Up to this many inputs the VNNI matmul is as fast: AMX pads the inputs to groups of 32, and at
// M = 1 both wait on memory. 4096 x 4096 on a 2-vCPU Sapphire Rapids-class VM, three interleaved
// rounds: 4 inputs took 1.04-1.22 ms by VNNI and 1.08-1.74 by AMX, 8 inputs 1.43-3.1 by VNNI and
// 1.13-2.05 by AMX, 9 inputs 1.57-1.63 by VNNI and 1.08-1.10 by AMX.
constexpr int64_t kMaxVnniInt8Inputs = 4;

// B tiles: inputs in groups of 16 (zero past M, padded to whole groups of 32), each group K / 64
// tiles of 16 rows x 64 bytes: row p of tile s holds bytes 4p..4p+3 of k-step s of each of the 16
// inputs, a 16 x 16 dword transpose of their 64-byte runs.
void arrange_int8_inputs(const int8_t* a, int64_t M, int64_t K, int8_t* out) {
  const Transpose16x16 transpose;
  const int64_t groups = (M + kInputBlock - 1) / kInputBlock * 2, steps = K / kInt8Step;
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t s = 0; s < steps; ++s) {
      __m512i rows[16];
      for (int64_t i = 0; i < 16; ++i) {
        const int64_t m = g * 16 + i;
        rows[i] = m < M ? _mm512_loadu_si512(a + m * K + s * kInt8Step) : _mm512_setzero_si512();
      }
      transpose(rows);
      int8_t* tile = out + (g * steps + s) * 1024;
      for (int64_t p = 0; p < 16; ++p)
        _mm512_storeu_si512(tile + p * 64, rows[p]);
    }
}

// out[m, o] = sum_k a[m, k] b[o, k] for whole blocks of 32 rows from `first_row` on (the rest to
// the VNNI matmul), every input, K % 64 == 0.
void int8_matmul_tiles(const int8_t* inputs, int64_t M, int64_t K, const int8_t* b,
                       int64_t first_row, int64_t last_row, int32_t* out, int64_t out_stride) {
  const int64_t pairs = (M + kInputBlock - 1) / kInputBlock, steps = K / kInt8Step;
  auto* sums = static_cast<int32_t*>(thread_scratch(ScratchSlot::kAmxSums, 1024 * sizeof(int32_t)));
  const Transpose16x16 transpose;
  configure_tiles();
  for (int64_t r0 = first_row; r0 + kRowBlock <= last_row; r0 += kRowBlock) {
    const int8_t* rows = b + r0 * K;
    for (int64_t h = 0; h < pairs; ++h) {
      const int8_t* first_group = inputs + 2 * h * steps * 1024;
      const int8_t* second_group = first_group + steps * 1024;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t s = 0; s < steps; ++s) {
        _tile_loadd(4, rows + s * kInt8Step, K);
        _tile_loadd(5, rows + 16 * K + s * kInt8Step, K);
        _tile_loadd(6, first_group + s * 1024, 64);
        _tile_loadd(7, second_group + s * 1024, 64);
        _tile_dpbssd(0, 4, 6);
        _tile_dpbssd(1, 4, 7);
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
      }
      _tile_stored(0, sums, 64);
      _tile_stored(1, sums + 256, 64);
      _tile_stored(2, sums + 512, 64);
      _tile_stored(3, sums + 768, 64);
      store_sum_block(sums, kRowBlock, M - h * kInputBlock, out, out_stride, h * kInputBlock, r0,
                      transpose);
    }
  }
  _tile_release();
}

// The VNNI matmul of the avx512_bf16 set, for what the tiles leave.
void int8_matmul_vnni(const int8_t* a, int64_t M, int64_t K, const int8_t* b,
                      const int32_t* row_sums, int64_t first_row, int64_t last_row, int32_t* out,
                      int64_t out_stride) {
  avx512_bf16_kernels().int8_matmul(a, M, K, b, row_sums, first_row, last_row, out, out_stride);
}

// Signed by signed bytes on the tiles (tdpbssd): only the rows left to the VNNI matmul need their
// sums.
void int8_matmul(const int8_t* a, int64_t M, int64_t K, const int8_t* b, const int32_t* row_sums,
                 int64_t first_row, int64_t last_row, int32_t* out, int64_t out_stride) {
  const int64_t whole_blocks_end = first_row + (last_row - first_row) / kRowBlock * kRowBlock;
  if (M <= kMaxVnniInt8Inputs || K % kInt8Step != 0 || whole_blocks_end == first_row)
    return int8_matmul_vnni(a, M, K, b, row_sums, first_row, last_row, out, out_stride);
  // Each thread lays out all inputs itself, as int8_matmul_vnni shifts them: cheap next to the
  // multiplies, and the interface stays that of the other sets.
  const size_t bytes = static_cast<size_t>((M + kInputBlock - 1) / kInputBlock * kInputBlock * K);
  auto* inputs = static_cast<int8_t*>(thread_scratch(ScratchSlot::kAmxInt8Inputs, bytes));
  arrange_int8_inputs(a, M, K, inputs);
  int8_matmul_tiles(inputs, M, K, b, first_row, whole_blocks_end, out, out_stride);
  if (whole_blocks_end < last_row)
    int8_matmul_vnni(a, M, K, b, row_sums, whole_blocks_end, last_row, out, out_stride);
}

}  // namespace

const CpuKernels& avx512_amx_kernels() {
  static const CpuKernels kernels = [] {
    CpuKernels k = avx512_bf16_kernels();
    k.isa = "avx512_amx";
    k.arrange_inputs_amx = arrange_inputs_amx;
    k.matmul_4bit_amx = matmul_4bit_amx;
    // 4096 x 4096, cold weights, on a 2-vCPU Sapphire Rapids-class VM: the GEMV took 2.3 ms for
    // 4 inputs, 4.2 for 8 and 8.0 for 16; these matmuls 3.5, 3.9 and 4.2 ms (12 ms for 128).
    k.max_gemv_inputs_bf16 = 8;
    k.int8_matmul = int8_matmul;
    return k;
  }();
  return kernels;
}

}  // namespace qplug::bnb
