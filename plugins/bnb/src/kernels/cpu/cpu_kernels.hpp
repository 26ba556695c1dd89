// The bnb plugin's CPU kernels, one implementation per instruction set, chosen at run time:
// AVX-512 (F, BW, VL) when the processor has it (with AVX512-BF16 and VNNI: the avx512_bf16 set,
// whose bfloat16 GEMV multiplies with vdpbf16ps and int8 matmul with vpdpbusd; with AMX-BF16 and
// AMX-INT8 as well: the avx512_amx set, whose batched bfloat16 and int8 matmuls run on AMX tiles),
// else AVX2 + FMA (with AVX-VNNI: the avx2_vnni set, whose int8 matmul uses 256-bit vpdpbusd), else
// portable scalar code.
// Every implementation computes the same bytes and (up to float summation order) the same sums;
// tests run each one against the scalar reference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace qplug::bnb {

struct FourBitCodebook {
  bool nf4 = true;
  float table[16];           // code -> value
  float nf4_thresholds[15];  // NF4: ascending thresholds
  float fp4_thresholds[7];   // FP4: magnitude thresholds
  uint8_t fp4_codes[8];      // FP4: bucket -> magnitude code
};

// Double quantization's map (a checkpoint's nested_quant_map) as decode_nested_scales reads it: the
// 256 float32 values, and their bytes in four planes (byte b of value c at planes[b][c]), from
// which AVX512-VBMI looks up one byte of 64 values at once.
struct NestedScaleMap {
  alignas(64) uint8_t planes[4][256];
  float values[256];
};
NestedScaleMap nested_scale_map(const float* values);

// Double quantization nests the scales of this many blocks under one float32 scale.
constexpr int64_t kNestedBlocksize = 256;

// arrange_tile_inputs may pad the inputs to a multiple of this many.
constexpr int64_t kTileInputGroup = 16;

// Where the GEMV finds the rows of a 4-bit weight whose rows are whole blocks: row o's packed codes
// at codes + o * codes_stride (bytes), its blocks' float32 scales at scales + o * scales_stride
// (floats). Separate tensors (contiguous_rows) have strides K / 2 and K / blocksize; the layer's
// interleaved rows (interleaved_rows.hpp) put each row's scales right after its codes, so that an
// M = 1 GEMV reads one stream through memory instead of two.
struct FourBitRows {
  const uint8_t* codes;
  const float* scales;
  int64_t codes_stride;
  int64_t scales_stride;
};

inline FourBitRows contiguous_rows(const uint8_t* packed, const float* absmax, int64_t K,
                                   int64_t blocksize) {
  return {packed, absmax, K / 2, K / blocksize};
}

// The same rows from row `first` on (w's row `first` becomes row 0).
inline FourBitRows rows_from(const FourBitRows& w, int64_t first) {
  return {w.codes + first * w.codes_stride, w.scales + first * w.scales_stride, w.codes_stride,
          w.scales_stride};
}

struct CpuKernels {
  // "avx512_amx", "avx512_bf16", "avx512_vnni", "avx512", "avx2_vnni", "avx2" or "scalar".
  const char* isa;

  // Quantizes blocks [first_block, last_block) of x (n floats in all): absmax per block, codes by
  // the CUDA tree rules (all-zero block: 1/0 = inf, 0*inf = NaN, code 0), two codes per byte, the
  // first in the high nibble. A partial last block is padded with the code of 0.
  void (*quantize_4bit)(const float* x, int64_t n, int64_t blocksize, const FourBitCodebook& book,
                        int64_t first_block, int64_t last_block, uint8_t* packed, float* absmax);

  // table[code_i] * absmax[i / blocksize] for the elements i of blocks [first_block, last_block),
  // written from out[0] on (out[i - first_block * blocksize]).
  void (*dequantize_4bit)(const uint8_t* packed, const float* absmax, int64_t n, int64_t blocksize,
                          const float* table, int64_t first_block, int64_t last_block, float* out);

  // Rearranges M inputs of K values (K % 32 == 0) into the order this implementation's GEMV
  // decodes packed nibbles in, so the decode needs no shuffle back to element order. `out` holds
  // M * K floats.
  void (*arrange_activations)(const float* x, int64_t M, int64_t K, float* out);

  // y[m, o] = sum_k x[m, k] W[o, k] for rows o in [first_row, last_row) of `w`, M inputs, when
  // each row is a whole number of blocks (K % blocksize == 0, blocksize a power of 2 >= 32).
  // x_arranged comes from arrange_activations. y has stride `y_stride` between inputs.
  void (*gemv_4bit)(const float* x_arranged, int64_t M, int64_t K, const FourBitRows& w,
                    int64_t blocksize, const float* table, int64_t first_row, int64_t last_row,
                    float* y, int64_t y_stride);

  // The same two operations for inputs and a table whose every value is a bfloat16 (its low 16
  // bits zero, as with bnb_4bit_compute_dtype bfloat16): the same sums, possibly in another order
  // and layout, decoding only the values' two high bytes. Sets without a faster path repeat the
  // general ones.
  void (*arrange_activations_bf16)(const float* x, int64_t M, int64_t K, float* out);
  void (*gemv_4bit_bf16)(const float* x_arranged, int64_t M, int64_t K, const FourBitRows& w,
                         int64_t blocksize, const float* table, int64_t first_row, int64_t last_row,
                         float* y, int64_t y_stride);

  // Batched matmuls multiply tiles of dequantized weights. decode_tile writes dequantize_4bit's
  // values of whole blocks [first_block, last_block) (blocksize a multiple of 32) from out[0] on,
  // each run of 32 in an order that is cheap to decode; arrange_tile_inputs lays M inputs of K
  // values (K % 32 == 0) out for gemm_tile, each run of 32 in the same order, so the products pair
  // up as in element order. `out` holds kTileInputGroup * ceil(M / kTileInputGroup) * K floats
  // (sets may pad the inputs to whole groups).
  void (*arrange_tile_inputs)(const float* x, int64_t M, int64_t K, float* out);
  void (*decode_tile)(const uint8_t* packed, const float* absmax, int64_t blocksize,
                      const float* table, int64_t first_block, int64_t last_block, float* out);

  // y[m, r] = sum_k x[m, k0 + k] w[r, k] (added to y when `accumulate`) for the M inputs that
  // arrange_tile_inputs laid out (K values each) and `rows` weight rows of kc values each,
  // contiguous in w, k0 and kc multiples of 32: the multiply of batched matmuls, on a tile
  // decode_tile has just decoded into cache.
  void (*gemm_tile)(const float* x_arranged, int64_t M, int64_t K, int64_t k0, const float* w,
                    int64_t rows, int64_t kc, float* y, int64_t ldy, bool accumulate);

  // LLM.int8 weight rows [first_row, last_row) of W [rows, K] (float values of the fp16 weight):
  // SCB[r] = max |W[r]|, CB[r, k] = round_half_even(W[r, k] * (127 / SCB[r])); a zero row gives
  // zero codes.
  void (*quantize_int8_rows)(const float* w, int64_t K, int64_t first_row, int64_t last_row,
                             int8_t* codes, float* scb);

  // out[m, o] = sum_k a[m, k] * b[o, k] in int32, for rows o in [first_row, last_row), codes in
  // [-127, 127]. row_sums[o] = sum_k b[o, k] for every row o of b (int8_row_sums, once per
  // weight): the VNNI sets multiply a + 128 and subtract 128 x the row's sum, the others ignore it.
  // avx512_bf16 multiplies by vpdpbusd (AVX512-VNNI); avx512_amx takes batches of more than 4
  // inputs to AMX-INT8 tiles (whole blocks of 32 rows, K % 64 == 0).
  void (*int8_matmul)(const int8_t* a, int64_t M, int64_t K, const int8_t* b,
                      const int32_t* row_sums, int64_t first_row, int64_t last_row, int32_t* out,
                      int64_t out_stride);

  // out[i] = x[i] rounded to float16 (nearest, ties to even; beyond its range infinite; NaN stays
  // NaN) and back: the values x.to(float16) holds, which LLM.int8 quantizes. out may be x.
  void (*round_to_float16)(const float* x, int64_t n, float* out);

  // The float32 scales of double-quantized blocks [first_block, last_block), into
  // out[i - first_block]: map.values[codes[i]] * nested_absmax[i / kNestedBlocksize] + offset, a
  // multiply and an add each rounded to float32, as bitsandbytes' dequantize_blockwise of the codes
  // and its + offset. Every set gives the same bits.
  void (*decode_nested_scales)(const uint8_t* codes, const float* nested_absmax,
                               const NestedScaleMap& map, float offset, int64_t first_block,
                               int64_t last_block, float* out);

  // Batches of up to this many inputs are faster through gemv_4bit (gemv_4bit_bf16) than
  // through the tiles. The GEMV decodes the weight once per 4 inputs, the tiles once per call.
  int64_t max_gemv_inputs = 16;
  int64_t max_gemv_inputs_bf16 = 16;

  // Batched matmuls with bfloat16 compute on AMX tiles (null in sets without AMX).
  // arrange_inputs_amx lays M inputs of K bfloat16 values (held in floats; K % 32 == 0) out as
  // the tiles read them: amx_input_words(M, K) words, inputs past M zero. matmul_4bit_amx then
  // computes y[m, o] = sum_k x[m, k] W[o, k] for rows o in [first_row, last_row) with W
  // dequantized to bfloat16 (table[code] * absmax rounded to nearest even, what bitsandbytes'
  // dequantize_4bit to bfloat16 gives; blocksize a power of 2 >= 32) and float32 sums.
  void (*arrange_inputs_amx)(const float* x, int64_t M, int64_t K, uint16_t* out) = nullptr;
  void (*matmul_4bit_amx)(const uint16_t* x_arranged, int64_t M, int64_t K, const uint8_t* packed,
                          const float* absmax, int64_t blocksize, const float* table,
                          int64_t first_row, int64_t last_row, float* y,
                          int64_t y_stride) = nullptr;
};

// The words arrange_inputs_amx writes: M rounded up to a multiple of 32, times K.
inline int64_t amx_input_words(int64_t M, int64_t K) {
  return (M + 31) / 32 * 32 * K;
}

// The plugin's per-thread scratch buffers (scratch.cpp), one per use: the 4-bit layer's arranged
// inputs, decoded tiles, bfloat16-rounded inputs, decoded nested scales and weight rows copied
// apart for the AMX matmul, the int8 layer's quantized activations, and the kernels' own.
enum class ScratchSlot {
  kArrangedInputs,
  kDecodedTile,
  kRoundedInputs,
  kInt8Inputs,
  kInt8InputCodes,
  kInt8RowScales,
  kAmxPanel,
  kAmxSums,
  kAmxInt8Inputs,
  kDecodedScales,
  kUnsignedInt8Inputs,
  kWideInt8Inputs,
  kAmxWeightRows,
  kCount
};

// The calling thread's buffer for `slot`: at least `bytes` bytes (never null), 64-byte aligned,
// contents undefined, reused by the next call (page faults cost more than a small matmul). Kernel
// files use this instead of std::vector, whose out-of-line code compiled with their ISA flags could
// replace the other files' copies at link time.
void* thread_scratch(ScratchSlot slot, size_t bytes);

// The best implementation this processor runs (QPLUG_BNB_ISA forces one: scalar, avx2, avx2_vnni,
// avx512, avx512_vnni, avx512_bf16 or avx512_amx).
const CpuKernels& cpu_kernels();
// A specific one; throws UnsupportedError if the processor lacks it.
const CpuKernels& cpu_kernels(const std::string& isa);
// The ones this processor can run, best last.
std::vector<std::string> available_isas();

// out[m * out_stride + o] += sum_{first_k <= k < K} a[m, k] * b[o, k] for rows [first_row,
// last_row) (kernels_scalar.cpp): the values after a vector int8 matmul's loop, which steps over
// whole vectors of k.
void add_int8_products(const int8_t* a, int64_t M, int64_t K, int64_t first_k, const int8_t* b,
                       int64_t first_row, int64_t last_row, int32_t* out, int64_t out_stride);

// sums[o] = sum_k b[o, k] for rows [first_row, last_row) of b (kernels_scalar.cpp): what every
// int8_matmul call takes as row_sums, computed when the weight is loaded instead of by each call
// (one pass less over the rows: 12-15% at M = 1 with cold weights in a Zen 5 harness).
void int8_row_sums(const int8_t* b, int64_t K, int64_t first_row, int64_t last_row, int32_t* sums);

// decode_nested_scales in plain float32 code (kernels_scalar.cpp, compiled without FMA so that the
// multiply and the add round separately): the scalar and AVX2 sets' decode, and the others' for
// what their vector loop leaves.
void decode_nested_scales_scalar(const uint8_t* codes, const float* nested_absmax,
                                 const NestedScaleMap& map, float offset, int64_t first_block,
                                 int64_t last_block, float* out);

// The even/odd layout the scalar GEMV uses: per input, even elements then odd ones.
void arrange_even_odd(const float* x, int64_t M, int64_t K, float* out);

const CpuKernels& scalar_kernels();
const CpuKernels& avx2_kernels();
const CpuKernels& avx2_vnni_kernels();
const CpuKernels& avx512_kernels();
const CpuKernels& avx512_vnni_kernels();
const CpuKernels& avx512_bf16_kernels();
const CpuKernels& avx512_amx_kernels();

}  // namespace qplug::bnb
