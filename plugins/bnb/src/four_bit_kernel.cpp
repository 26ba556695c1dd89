#include "four_bit_kernel.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <qplug/sdk/config.hpp>
#include <qplug/sdk/cpu_linear_kernel.hpp>
#include <qplug/sdk/errors.hpp>
#include <qplug/sdk/torch_interop.hpp>
#include <qplug/sdk/value.hpp>

#include "balanced_rows.hpp"
#include "bnb_tensors.hpp"
#include "code_tables.hpp"
#include "interleaved_rows.hpp"
#include "kernels/cpu/cpu_kernels.hpp"
#include "quantize_4bit.hpp"

namespace qplug::bnb {

namespace {

// A dequantized tile: 8 weight rows x 1024 columns (rounded to whole blocks), 32 KiB, which stays
// in L1/L2 while every input's 1024 columns stream past it; 8 rows is also the AVX-512 multiply's
// register block. (4-64 rows x 256-2048 columns were tried at M = 128 with the former dot-product
// tiles: this and 16 x 1024 or 64 x 512 were fastest, within the machine's noise. Not retuned for
// the outer-product tiles.)
constexpr int64_t kTileRows = 8;
constexpr int64_t kTileDepth = 1024;
// Nested scales are decoded for runs of this many rows, whole AMX row blocks (32) and tiles (8):
// 32 KiB of scales with K = 4096 in blocks of 64. In a Zen 5 A/B of 4096 x 4096 at M = 1 with cold
// weights, runs of 32 rows made double-quantized layers 20-27% slower than float32 scales, runs of
// 128, 256 or 512 rows 0-5%.
constexpr int64_t kScaleRunRows = 128;
// The GEMV hands its threads this many rows at a time, one whole run of nested scales, or fewer
// (a multiple of 16) where a layer has too few rows for two chunks per thread. In an A/B through
// apply() at M = 1 with cold weights (4096 x 4096 and 11008 x 4096, Zen 5, 2 cores), chunks of 128
// rows against even halves: bfloat16 1-12% faster, float32 -1% to +7%, double-quantized 10-20%
// faster; 64 and 256 rows no better than 128; M = 4, 8 and 16 as fast as before.
constexpr int64_t kGemvChunkRows = kScaleRunRows;
// Rows longer than this stay two tensors. In one process, alternating, at M = 1 with cold weights
// (4096 rows, blocksize 64, Zen 5, 12-20 rounds), interleaved rows against separate tensors read
// bfloat16 K = 2048 +22%, 4096 +17%, 5632 +7%, 6144 +5%, but 7168 -16%, 8192 -16%, 11008 -18%,
// 14336 -7% (float32 alike: 7168 -12%, 11008 -15%), with no prefetch distance (4-16 KiB) or order
// (scales before codes, rows padded to 64 bytes) helping the long rows.
constexpr int64_t kMaxInterleavedK = 6144;

int64_t gemv_chunk_rows(int64_t rows) {
  const int64_t chunks = 2 * static_cast<int64_t>(at::get_num_threads());
  const int64_t even = (rows + chunks - 1) / chunks;
  return std::clamp<int64_t>((even + 15) / 16 * 16, 16, kGemvChunkRows);
}

const char* type_name(QuantType t) {
  return t == QuantType::NF4 ? "nf4" : "fp4";
}

// Per-thread scratch memory (thread_scratch) reused across calls: a fresh allocation of a few MB
// every matmul costs more in page faults (~12 us per 4 KiB page on our machines) than the matmul
// itself.
float* scratch(int64_t floats, ScratchSlot slot) {
  return static_cast<float*>(thread_scratch(slot, static_cast<size_t>(floats) * sizeof(float)));
}

// Rounds float32 values to the nearest bfloat16 (ties to even, NaN stays NaN), as
// Tensor::to(kBFloat16) does, and keeps them as float32; `in` may be `out`. One pass instead of
// the two conversions to bfloat16 and back, which cost ~3.5 us per call in LibTorch's dispatch,
// 2-3% of a 4096 x 4096 GEMV.
void round_to_bfloat16(const float* in, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, in + i, 4);
    const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
    bits = (bits & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC00000u : rounded;
    std::memcpy(out + i, &bits, 4);
  }
}

at::Tensor bytes_tensor(const std::string& s) {
  at::Tensor t = at::empty({static_cast<int64_t>(s.size())}, at::TensorOptions().dtype(at::kByte));
  std::memcpy(t.data_ptr(), s.data(), s.size());
  return t;
}

std::string tensor_text(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()),
                     static_cast<size_t>(c.numel()));
}

class FourBitKernel final : public CpuLinearKernel {
 public:
  explicit FourBitKernel(const LinearKernelArgs& args)
      : CpuLinearKernel(args, "bnb 4-bit"),
        settings_(four_bit_settings(*args.config)),
        kernels_(cpu_kernels()) {
    const int64_t bytes = packed_bytes();
    if (bytes % dtype_size(settings_.quant_storage) != 0)
      throw KernelError(
          "layer '" + args_.layer + "': its " + std::to_string(args_.shape.out_features) + " x " +
          std::to_string(args_.shape.in_features) + " weight packs into " + std::to_string(bytes) +
          " bytes, not a whole number of " + torch_name(settings_.quant_storage) +
          " values (bnb_4bit_quant_storage); store it as uint8, or keep the layer "
          "in full precision with llm_int8_skip_modules");
  }

  std::string name() const override {
    return std::string("bnb_") + type_name(settings_.quant_type);
  }
  std::string quant_method() const override { return "bitsandbytes_4bit"; }

  std::vector<TensorSpec> tensor_specs() const override {
    auto specs = four_bit_tensor_specs(args_.shape, settings_, args_.dtype);
    // The quant state's length depends on nested_offset's digits: known once quantized.
    for (auto& s : specs)
      if (s.suffix.find("quant_state") != std::string::npos)
        s.shape = {state_json_.empty() ? -1 : static_cast<int64_t>(state_json_.size())};
    return specs;
  }

  // A checkpoint's packed codes come as their bytes, whatever dtype they were stored as (the core
  // reads a uint8 tensor stored through another dtype's view as it is): a checkpoint whose
  // config.json names another bnb_4bit_quant_storage than its tensors holds the same codes.
  std::vector<TensorSpec> input_tensor_specs() const override {
    std::vector<TensorSpec> specs = CpuLinearKernel::input_tensor_specs();
    if (args_.pre_quantized)
      for (auto& s : specs)
        if (s.suffix == "weight") s = {"weight", {packed_bytes(), 1}, DType::U8};
    return specs;
  }

  std::vector<std::pair<std::string, at::Tensor>> tensors() const override {
    std::vector<std::pair<std::string, at::Tensor>> out;
    if (!has_weight()) return out;
    const FourBitWeight stored = checkpoint_weight();
    out.emplace_back("weight", stored_as_quant_storage(stored.packed));
    out.emplace_back("weight.absmax", stored.nested ? stored.absmax_codes : stored.absmax);
    out.emplace_back("weight.quant_map", quant_map_);
    if (weight_.nested) {
      out.emplace_back("weight.nested_absmax", weight_.nested_absmax);
      out.emplace_back("weight.nested_quant_map", weight_.nested_map);
    }
    out.emplace_back(
        std::string("weight.quant_state.bitsandbytes__") + type_name(settings_.quant_type),
        bytes_tensor(state_json_));
    if (bias_.defined()) out.emplace_back("bias", bias_);
    return out;
  }

  void load_tensor(const std::string& suffix, const at::Tensor& value) override {
    if (suffix == "bias") {
      bias_ = value.to(to_scalar_type(args_.dtype));
      return;
    }
    if (!args_.pre_quantized) {
      if (suffix != "weight") fail(suffix, "unexpected tensor for a layer quantized while loading");
      quantize_dense(value);
      return;
    }
    stored_[suffix] = value;
  }

  void process_weights_after_loading() override {
    if (args_.pre_quantized && !has_weight()) assemble_prequantized();
    if (!has_weight()) fail("weight", "missing tensor");
    if (args_.shape.has_bias && !bias_.defined()) fail("bias", "missing tensor");
    if (bias_.defined()) bias_in_compute_dtype_ = in_compute_dtype(bias_).to(at::kFloat);
  }

  at::Tensor apply(const at::Tensor& x) override {
    const int64_t K = args_.shape.in_features, N = args_.shape.out_features;
    // As transformers' Linear4bit: the input is cast to the compute dtype and so is the result.
    // Products and sums run in float32 (bitsandbytes' kernels accumulate in float32 as well).
    // Bfloat16 roundings are done in float32 by round_to_bfloat16, except for bfloat16 inputs:
    // they are rounded already, and the cast of their result back to bfloat16 rounds it.
    const bool bf16 = settings_.compute_dtype == DType::BF16;
    at::Tensor x2 = x.reshape({-1, K});
    if (settings_.compute_dtype == DType::F16) x2 = x2.to(at::kHalf);
    x2 = x2.to(at::kFloat).contiguous();
    const int64_t M = x2.size(0);
    const bool round_here = bf16 && x.scalar_type() != at::kBFloat16;
    if (round_here) {  // in scratch: x2 may be the caller's tensor
      float* rounded = scratch(M * K, ScratchSlot::kRoundedInputs);
      round_to_bfloat16(x2.data_ptr<float>(), M * K, rounded);
      x2 = at::from_blob(rounded, {M, K}, at::TensorOptions().dtype(at::kFloat));
    }
    at::Tensor y;
    // Small batches take the fused GEMV, larger ones multiply dequantized tiles (the kernel set
    // knows where its tiles get faster).
    const int64_t max_gemv_rows = bf16 ? kernels_.max_gemv_inputs_bf16 : kernels_.max_gemv_inputs;
    if (M <= max_gemv_rows && K % settings_.blocksize == 0)
      y = gemv(x2);
    else if (bf16 && kernels_.matmul_4bit_amx != nullptr && K % settings_.blocksize == 0)
      y = amx_matmul(x2);
    else
      y = tiled_matmul(x2);
    if (bias_.defined()) y.add_(bias_in_compute_dtype_);
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = N;
    if (round_here)
      round_to_bfloat16(y.data_ptr<float>(), M * N, y.data_ptr<float>());
    else if (!bf16)
      y = in_compute_dtype(y);
    return y.view(shape).to(x.scalar_type());
  }

  at::Tensor dequantize(DType dtype) const override {
    const int64_t n = args_.shape.in_features * args_.shape.out_features;
    const FourBitWeight stored = checkpoint_weight();
    return dequantize_4bit(stored.packed, float_scales(stored), n, settings_.blocksize,
                           table_.data(), kernels_)
        .view({args_.shape.out_features, args_.shape.in_features})
        .to(to_scalar_type(dtype));
  }

 private:
  void quantize_dense(const at::Tensor& value) {
    const std::vector<int64_t> expected{args_.shape.out_features, args_.shape.in_features};
    if (value.sizes().vec() != expected)
      fail("weight", "shape " + shape_string(value.sizes().vec()) + " does not match the layer's " +
                         shape_string(expected));
    if (!at::isfinite(value).all().item<bool>())
      throw KernelError("layer '" + args_.layer +
                        "' has NaN or infinite weights; bitsandbytes would quantize them to "
                        "garbage. Fix the checkpoint, or keep the layer in full precision with "
                        "llm_int8_skip_modules");
    if (rows_are_interleaved())
      rows_ = quantize_4bit_rows(value, settings_, kernels_);
    else
      weight_ = quantize_4bit(value, settings_, kernels_);
    prepare_nested_map();
    set_table(four_bit_table(settings_.quant_type).data());
    quant_map_ = at::from_blob(const_cast<float*>(table_.data()), {16},
                               at::TensorOptions().dtype(at::kFloat))
                     .clone();
    state_json_ = quant_state_json(settings_, args_.dtype, args_.shape.out_features,
                                   args_.shape.in_features, weight_.nested_offset);
  }

  // A Linear4bit checkpoint: the packed codes, the scales (nested or not), the code table, and the
  // quant state JSON that ties them together.
  void assemble_prequantized() {
    const std::string state_key =
        std::string("weight.quant_state.bitsandbytes__") + type_name(settings_.quant_type);
    for (const char* key : {"weight", "weight.absmax", "weight.quant_map"})
      if (!stored_.count(key)) fail(key, "missing tensor of a bitsandbytes 4-bit layer");
    if (!stored_.count(state_key)) {
      const std::string other =
          std::string("weight.quant_state.bitsandbytes__") +
          type_name(settings_.quant_type == QuantType::NF4 ? QuantType::FP4 : QuantType::NF4);
      fail(state_key, stored_.count(other)
                          ? "missing; the layer holds a " + other.substr(other.size() - 3) +
                                " quant state but config.json says bnb_4bit_quant_type " +
                                type_name(settings_.quant_type)
                          : "missing quant state (the JSON bitsandbytes stores with every 4-bit "
                            "weight)");
    }
    const std::string json = tensor_text(stored_.at(state_key));
    Value state;
    try {
      state = parse_json(json, args_.layer + "." + state_key);
    } catch (const ConfigError& e) {
      fail(state_key, std::string("quant state is not valid JSON: ") + e.what());
    }
    const int64_t bs = state.at("blocksize").as_int();
    if (bs < 32 || bs > 4096 || (bs & (bs - 1)) != 0)
      fail(state_key, "quant state blocksize " + std::to_string(bs) +
                          " is not one bitsandbytes uses (a power of 2 from 32 to 4096)");
    const std::vector<std::string> type{state.at("quant_type").as_string()};
    if (type.front() != type_name(settings_.quant_type))
      fail(state_key, "quant state says quant_type " + type.front() + " but config.json says " +
                          type_name(settings_.quant_type));
    const Value& shape = state.at("shape");
    std::vector<int64_t> dims;
    for (const auto& d : shape.as_list())
      dims.push_back(d.as_int());
    const std::vector<int64_t> expected{args_.shape.out_features, args_.shape.in_features};
    if (dims != expected)
      fail(state_key, "quant state shape " + shape_string(dims) + " disagrees with the layer's " +
                          shape_string(expected) + " from config.json");
    settings_.blocksize = bs;
    const int64_t n = expected[0] * expected[1];
    const int64_t blocks = (n + bs - 1) / bs;
    const at::Tensor& packed = stored_.at("weight");
    if (packed.scalar_type() != at::kByte || packed.numel() != (n + 1) / 2)
      fail("weight", "holds " + std::to_string(packed.numel()) + " bytes; " +
                         std::to_string((n + 1) / 2) + " uint8 were expected for a [" +
                         std::to_string(expected[0]) + ", " + std::to_string(expected[1]) +
                         "] weight");
    weight_.packed = packed.reshape({(n + 1) / 2, 1}).contiguous();
    const at::Tensor& absmax = stored_.at("weight.absmax");
    if (absmax.numel() != blocks)
      fail("weight.absmax", "holds " + std::to_string(absmax.numel()) + " scales; blocksize " +
                                std::to_string(bs) + " needs " + std::to_string(blocks));
    const bool nested = state.contains("nested_offset");
    settings_.double_quant = nested;
    if (nested) {
      for (const char* key : {"weight.nested_absmax", "weight.nested_quant_map"})
        if (!stored_.count(key)) fail(key, "missing tensor of a double-quantized layer");
      weight_.nested = true;
      weight_.absmax_codes = absmax.to(at::kByte).contiguous();
      weight_.nested_absmax = stored_.at("weight.nested_absmax").to(at::kFloat).contiguous();
      if (weight_.nested_absmax.numel() != (blocks + 255) / 256)
        fail("weight.nested_absmax", "holds " + std::to_string(weight_.nested_absmax.numel()) +
                                         " scales; " + std::to_string(blocks) +
                                         " absmax codes need " +
                                         std::to_string((blocks + 255) / 256) + " (one per 256)");
      // As bitsandbytes, the checkpoint's own map decodes the codes.
      weight_.nested_map = stored_.at("weight.nested_quant_map").to(at::kFloat).contiguous();
      if (weight_.nested_map.numel() != 256)
        fail("weight.nested_quant_map", "must hold 256 values (one per absmax code)");
      weight_.nested_offset = static_cast<float>(state.at("nested_offset").as_double());
      prepare_nested_map();
    } else {
      weight_.absmax = absmax.to(at::kFloat).contiguous();
      interleave_if_rows_are_blocks();
    }
    const at::Tensor quant_map = stored_.at("weight.quant_map").to(at::kFloat).contiguous();
    if (quant_map.numel() != 16) fail("weight.quant_map", "must hold 16 values");
    quant_map_ = quant_map;
    set_table(quant_map.data_ptr<float>());  // the checkpoint's own table decides the values
    state_json_ = json;
    stored_.clear();
  }

  // A double-quantized weight keeps its scales as one byte each, as in bitsandbytes, not as float32
  // (4x the bytes: 1 MiB next to 8 MiB of codes for a 4096 x 4096 layer). The matmuls decode a run
  // of rows' scales at a time into cache (rows_with_scales) through this form of the nested map.
  void prepare_nested_map() {
    if (weight_.nested) nested_map_ = nested_scale_map(weight_.nested_map.data_ptr<float>());
  }

  // Bytes of the packed codes: two per byte, a padding nibble after an odd count.
  int64_t packed_bytes() const {
    return (args_.shape.in_features * args_.shape.out_features + 1) / 2;
  }

  // The packed codes [bytes, 1] as bitsandbytes stores them with bnb_4bit_quant_storage: the same
  // bytes viewed as that dtype, [bytes / its size, 1].
  at::Tensor stored_as_quant_storage(const at::Tensor& packed) const {
    if (settings_.quant_storage == DType::U8) return packed;
    return packed.contiguous()
        .view({-1})
        .view(to_scalar_type(settings_.quant_storage))
        .view({-1, 1});
  }

  // The weight held as checkpoint tensors: the stored ones, or copies split from the interleaved
  // rows.
  FourBitWeight checkpoint_weight() const {
    if (!rows_.defined()) return weight_;
    FourBitWeight out;
    std::tie(out.packed, out.absmax) =
        split_rows(rows_, args_.shape.in_features, settings_.blocksize);
    return out;
  }

  bool has_weight() const { return rows_.defined() || weight_.packed.defined(); }

  // A non-nested weight whose rows are whole blocks of at most kMaxInterleavedK is held in the
  // interleaved layout (each row's scales after its codes: interleaved_rows.hpp), which every
  // matmul of such a weight reads: quantized straight into it while loading, or moved into it from
  // a checkpoint's tensors (interleave_if_rows_are_blocks). Others keep the checkpoint's tensors:
  // nested scales are decoded run by run into cache, and blocks that straddle rows go through
  // dequantize_4bit.
  bool rows_are_interleaved() const {
    const int64_t K = args_.shape.in_features;
    return !settings_.double_quant && K % settings_.blocksize == 0 && K <= kMaxInterleavedK;
  }
  void interleave_if_rows_are_blocks() {
    const int64_t K = args_.shape.in_features, N = args_.shape.out_features;
    if (!rows_are_interleaved()) return;
    rows_ = interleave_rows(weight_.packed, weight_.absmax, N, K, settings_.blocksize);
    weight_.packed = weight_.absmax = at::Tensor();
  }

  // Calls `multiply(w, first, rows)` for runs of whole rows that together make up
  // [first_row, last_row), w's row 0 being row `first`, K % blocksize == 0. Unnested weights are
  // the interleaved rows, in one run; nested ones are their codes with the scales decoded into
  // this thread's scratch run by run (kScaleRunRows rows).
  template <typename Multiply>
  void rows_with_scales(int64_t first_row, int64_t last_row, const Multiply& multiply) const {
    const int64_t K = args_.shape.in_features, N = args_.shape.out_features;
    const int64_t blocks_per_row = K / settings_.blocksize;
    if (!weight_.nested) {
      const FourBitRows w = rows_.defined() ? interleaved_rows(rows_, K, settings_.blocksize)
                                            : contiguous_rows(weight_.packed.data_ptr<uint8_t>(),
                                                              weight_.absmax.data_ptr<float>(), K,
                                                              settings_.blocksize);
      multiply(rows_from(w, first_row), first_row, last_row - first_row);
      return;
    }
    const uint8_t* packed = weight_.packed.data_ptr<uint8_t>();
    float* scales = scratch(kScaleRunRows * blocks_per_row, ScratchSlot::kDecodedScales);
    const uint8_t* codes = weight_.absmax_codes.data_ptr<uint8_t>();
    const float* nested = weight_.nested_absmax.data_ptr<float>();
    for (int64_t r0 = first_row; r0 < last_row; r0 += kScaleRunRows) {
      const int64_t rows = std::min(kScaleRunRows, last_row - r0);
      kernels_.decode_nested_scales(codes, nested, nested_map_, weight_.nested_offset,
                                    r0 * blocks_per_row, (r0 + rows) * blocks_per_row, scales);
      // The next run's codes, while this run multiplies: its decode would otherwise wait on their
      // cache lines one by one (with cold weights, in the A/B above: 3-7% slower than float32
      // scales without this, 0-5% with it). Past last_row as well: the GEMV hands a thread one
      // run at a time (for_row_chunks_balanced), and its next run is most often the next rows.
      // (The tiles and AMX hand each thread one range: past its end this fetches one run of
      // another thread's codes, 8 KiB for K = 4096.)
      const int64_t next_end = std::min(N, r0 + rows + kScaleRunRows) * blocks_per_row;
      for (int64_t b = (r0 + rows) * blocks_per_row; b < next_end; b += 64)
        __builtin_prefetch(codes + b);
      multiply(contiguous_rows(packed + r0 * (K / 2), scales, K, settings_.blocksize), r0, rows);
    }
  }

  // The code values the matmuls use: bitsandbytes' kernels look them up in the compute dtype, so
  // with bfloat16 or float16 they are rounded to it (dequantize() keeps the exact float32 ones).
  void set_table(const float* values) {
    std::copy_n(values, 16, table_.begin());
    const at::Tensor exact =
        at::from_blob(table_.data(), {16}, at::TensorOptions().dtype(at::kFloat));
    const at::Tensor rounded = in_compute_dtype(exact).to(at::kFloat).contiguous();
    std::copy_n(rounded.data_ptr<float>(), 16, compute_table_.begin());
  }

  bool sixteen_bit_compute() const {
    return settings_.compute_dtype == DType::BF16 || settings_.compute_dtype == DType::F16;
  }

  at::Tensor in_compute_dtype(const at::Tensor& t) const {
    return sixteen_bit_compute() ? t.to(to_scalar_type(settings_.compute_dtype)) : t;
  }

  at::Tensor gemv(const at::Tensor& x2) const {
    const int64_t M = x2.size(0), K = x2.size(1), N = args_.shape.out_features;
    // A bfloat16 table has only two significant bytes per value: the kernels decode just those.
    const bool bf16 = settings_.compute_dtype == DType::BF16;
    const auto arrange = bf16 ? kernels_.arrange_activations_bf16 : kernels_.arrange_activations;
    const auto gemv_rows = bf16 ? kernels_.gemv_4bit_bf16 : kernels_.gemv_4bit;
    // The inputs in the order the kernel decodes weights in, so decoding needs no reordering.
    float* arranged = scratch(M * K, ScratchSlot::kArrangedInputs);
    arrange(x2.data_ptr<float>(), M, K, arranged);
    at::Tensor y = at::empty({M, N}, at::TensorOptions().dtype(at::kFloat));
    const float* xs = arranged;
    float* out = y.data_ptr<float>();
    const auto multiply_rows = [&](int64_t first, int64_t last) {
      rows_with_scales(first, last, [&](const FourBitRows& w, int64_t r0, int64_t rows) {
        gemv_rows(xs, M, K, w, settings_.blocksize, compute_table_.data(), 0, rows, out + r0, N);
      });
    };
    for_row_chunks_balanced(N, gemv_chunk_rows(N), multiply_rows);
    return y;
  }

  // Larger batches with bfloat16 compute where the processor has AMX: each task decodes panels of
  // 32 weight rows to bfloat16 and multiplies them with every input on the tile registers. The
  // weights are table[code] * absmax rounded to bfloat16, as transformers multiplies batches:
  // dequantize_4bit, cast to the compute dtype, then a bfloat16 matmul with float32 sums.
  at::Tensor amx_matmul(const at::Tensor& x2) const {
    const int64_t M = x2.size(0), K = args_.shape.in_features, N = args_.shape.out_features;
    auto* x = reinterpret_cast<uint16_t*>(
        scratch((amx_input_words(M, K) + 1) / 2, ScratchSlot::kArrangedInputs));
    kernels_.arrange_inputs_amx(x2.data_ptr<float>(), M, K, x);
    at::Tensor y = at::empty({M, N}, at::TensorOptions().dtype(at::kFloat));
    float* out = y.data_ptr<float>();
    constexpr int64_t kRowsPerTask = 32;  // the AMX kernel's row block
    const int64_t bs = settings_.blocksize;
    at::parallel_for(0, (N + kRowsPerTask - 1) / kRowsPerTask, 1, [&](int64_t first, int64_t last) {
      // The AMX kernel reads codes and scales as separate arrays: interleaved rows are copied
      // apart one row block at a time (72 KiB for K = 4096), in cache for the panels that decode
      // them right after; batches large enough for AMX spend far longer on the products.
      auto* codes = static_cast<uint8_t*>(
          thread_scratch(ScratchSlot::kAmxWeightRows,
                         static_cast<size_t>(kRowsPerTask * interleaved_row_bytes(K, bs))));
      float* scales = reinterpret_cast<float*>(codes + kRowsPerTask * (K / 2));
      rows_with_scales(first * kRowsPerTask, std::min(N, last * kRowsPerTask),
                       [&](const FourBitRows& w, int64_t r0, int64_t rows) {
                         for (int64_t b = 0; b < rows; b += kRowsPerTask) {
                           const int64_t block = std::min(kRowsPerTask, rows - b);
                           const FourBitRows part = rows_from(w, b);
                           const bool apart = part.codes_stride == K / 2;  // nested: decoded
                           if (!apart) copy_rows_apart(part, block, K, bs, codes, scales);
                           kernels_.matmul_4bit_amx(x, M, K, apart ? part.codes : codes,
                                                    apart ? part.scales : scales, bs, table_.data(),
                                                    0, block, out + r0 + b, N);
                         }
                       });
    });
    return y;
  }

  // Larger batches. Each task dequantizes a tile of kTileRows weight rows x ~kTileDepth columns
  // into per-thread scratch that stays in cache and multiplies it with every input right away: no
  // dense copy of the weight, and no BLAS, whose own threads would compete with LibTorch's OpenMP
  // threads for the cores (that contention made the former dequantize-then-BLAS path 2x slower
  // than a dense matmul at M = 128). Each input's sums over the tiles of a row add up in y.
  at::Tensor tiled_matmul(const at::Tensor& x2) const {
    const int64_t M = x2.size(0), K = args_.shape.in_features, N = args_.shape.out_features;
    const int64_t bs = settings_.blocksize;
    // Blocks that straddle rows, or are not whole runs of 32 (a checkpoint's own blocksize): the
    // tiles cannot cut them, so dequantize the whole weight.
    if (K % bs != 0 || bs % 32 != 0) {
      const at::Tensor w = dequantize_4bit(weight_.packed, float_scales(weight_), K * N, bs,
                                           compute_table_.data(), kernels_);
      return at::matmul(x2, w.view({N, K}).t());
    }
    const int64_t depth = std::max<int64_t>(1, kTileDepth / bs) * bs;
    at::Tensor y = at::empty({M, N}, at::TensorOptions().dtype(at::kFloat));
    // The inputs in the order the tiles are decoded in (per run of 32 columns), perhaps padded.
    float* x = scratch((M + kTileInputGroup - 1) / kTileInputGroup * kTileInputGroup * K,
                       ScratchSlot::kArrangedInputs);
    kernels_.arrange_tile_inputs(x2.data_ptr<float>(), M, K, x);
    float* out = y.data_ptr<float>();
    const int64_t tiles = (N + kTileRows - 1) / kTileRows;
    at::parallel_for(0, tiles, 1, [&](int64_t first, int64_t last) {
      float* tile = scratch(kTileRows * depth, ScratchSlot::kDecodedTile);
      rows_with_scales(first * kTileRows, std::min(N, last * kTileRows),
                       [&](const FourBitRows& w, int64_t r0, int64_t rows) {
                         multiply_tiles(x, M, w, rows, depth, tile, out + r0);
                       });
    });
    return y;
  }

  // Adds to y (stride N) the products of the arranged inputs x and the first `rows` rows of `w`,
  // kTileRows rows by `depth` columns at a time through `tile`.
  void multiply_tiles(const float* x, int64_t M, const FourBitRows& w, int64_t rows, int64_t depth,
                      float* tile, float* y) const {
    const int64_t K = args_.shape.in_features, N = args_.shape.out_features;
    const int64_t bs = settings_.blocksize;
    for (int64_t t0 = 0; t0 < rows; t0 += kTileRows) {
      const int64_t tile_rows = std::min(kTileRows, rows - t0);
      for (int64_t k0 = 0; k0 < K; k0 += depth) {
        const int64_t kc = std::min(depth, K - k0);
        for (int64_t r = 0; r < tile_rows; ++r)
          kernels_.decode_tile(w.codes + (t0 + r) * w.codes_stride,
                               w.scales + (t0 + r) * w.scales_stride, bs, compute_table_.data(),
                               k0 / bs, (k0 + kc) / bs, tile + r * kc);
        kernels_.gemm_tile(x, M, K, k0, tile, tile_rows, kc, y + t0, N, /*accumulate=*/k0 > 0);
      }
    }
  }

  FourBitSettings settings_;
  const CpuKernels& kernels_;
  FourBitWeight weight_;  // packed and absmax undefined once moved to rows_
  at::Tensor rows_;       // interleaved rows (interleave_if_rows_are_blocks), else undefined
  at::Tensor quant_map_;
  NestedScaleMap nested_map_{};            // weight_.nested_map, as the kernels decode it (nested)
  std::array<float, 16> table_{};          // the checkpoint's code values
  std::array<float, 16> compute_table_{};  // the same, in the compute dtype
  at::Tensor bias_in_compute_dtype_;       // as float32, added to every result
  std::string state_json_;
  std::map<std::string, at::Tensor> stored_;  // pre-quantized tensors until all arrived
};

}  // namespace

std::unique_ptr<LinearKernel> make_four_bit_kernel(const LinearKernelArgs& args) {
  if (args.config == nullptr)
    throw KernelError("the bnb 4-bit kernel of '" + args.layer + "' needs the method's config");
  return std::make_unique<FourBitKernel>(args);
}

}  // namespace qplug::bnb
