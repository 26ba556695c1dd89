// bitsandbytes kernels on the CPU: quantization and dequantization throughput, and 4-bit GEMV/GEMM
// as effective weight bandwidth next to a dense fp32 at::linear on the same shapes and the
// machine's measured read bandwidth. Results are reported, never asserted.
#include <benchmark/benchmark.h>

#include <map>
#include <string>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "bench_support.hpp"
#include "bnb_config.hpp"
#include "eight_bit_kernel.hpp"
#include "four_bit_kernel.hpp"
#include "kernels/cpu/cpu_kernels.hpp"
#include "qplug/sdk/value.hpp"
#include "quantize_4bit.hpp"

namespace qplug::bnb {
namespace {

// NF4 with the given bnb_4bit_compute_dtype, with or without double quantization.
const QuantConfig& nf4_config(const char* compute_dtype, bool double_quant) {
  static std::map<std::string, QuantConfig> configs;
  const std::string key = std::string(compute_dtype) + (double_quant ? " nested" : "");
  auto it = configs.find(key);
  if (it == configs.end()) {
    Value raw = Value::map();
    raw.set("bnb_4bit_quant_type", "nf4");
    raw.set("bnb_4bit_compute_dtype", compute_dtype);
    raw.set("bnb_4bit_use_double_quant", double_quant);
    it = configs.emplace(key, make_schema("bitsandbytes_4bit").validate(raw)).first;
  }
  return it->second;
}

std::unique_ptr<LinearKernel> nf4_layer(int64_t n, int64_t k, uint64_t seed,
                                        const char* compute_dtype = "float32",
                                        bool double_quant = false) {
  LinearKernelArgs args;
  args.layer = "bench";
  args.shape = {k, n, false};
  args.config = &nf4_config(compute_dtype, double_quant);
  auto kernel = make_four_bit_kernel(args);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  kernel->load_tensor("weight", at::randn({n, k}, gen) * 0.02);
  kernel->process_weights_after_loading();
  return kernel;
}

void set_isa_label(benchmark::State& state) {
  state.SetLabel(cpu_kernels().isa);
}

void BM_Quantize4bit(benchmark::State& state) {
  c10::InferenceMode guard;
  const at::Tensor w = at::randn({4096, 4096}) * 0.02;
  FourBitSettings s{QuantType::NF4, state.range(0) != 0, 64, DType::F32};
  for (auto _ : state)
    benchmark::DoNotOptimize(quantize_4bit(w, s, cpu_kernels()));
  state.counters["elements_per_s"] = benchmark::Counter(
      static_cast<double>(w.numel()), benchmark::Counter::kIsIterationInvariantRate);
  set_isa_label(state);
}
BENCHMARK(BM_Quantize4bit)
    ->ArgName("double_quant")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_Dequantize4bit(benchmark::State& state) {
  c10::InferenceMode guard;
  auto layer = nf4_layer(4096, 4096, 1);
  for (auto _ : state)
    benchmark::DoNotOptimize(layer->dequantize(DType::F32));
  state.counters["elements_per_s"] =
      benchmark::Counter(4096.0 * 4096.0, benchmark::Counter::kIsIterationInvariantRate);
  set_isa_label(state);
}
BENCHMARK(BM_Dequantize4bit)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_DenseLinear(benchmark::State& state) {
  c10::InferenceMode guard;
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const std::vector<at::Tensor>& weights = qplug::bench::dense_copies(n, k);
  const at::Tensor x = at::randn({m, k});
  size_t i = 0;
  for (auto _ : state)
    benchmark::DoNotOptimize(at::linear(x, weights[i++ % weights.size()]));
  const double bytes = n * k * 4.0;
  state.counters["weight_GBps"] = benchmark::Counter(
      bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["GFLOPs"] = benchmark::Counter(
      2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["bandwidth_GBps"] = qplug::bench::read_bandwidth_gbps();
}

// 4-bit NF4 (blocksize 64) linear: cold weights (a fresh layer every call) or hot (one layer).
// weight_GBps counts the bytes the layer holds: codes, and float32 scales or, double-quantized,
// one byte per scale plus a float32 per 256 scales.
void nf4_linear(benchmark::State& state, const char* compute_dtype, bool double_quant = false) {
  c10::InferenceMode guard;
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const bool cold = state.range(3) != 0;
  const int64_t blocks = n * k / 64;
  const int64_t weight_bytes =
      n * k / 2 + (double_quant ? blocks + (blocks + 255) / 256 * 4 : blocks * 4);
  const int64_t copies = cold ? qplug::bench::cold_copies(weight_bytes) : 1;
  const auto& layers = qplug::bench::layer_copies(
      std::string("nf4 ") + compute_dtype + (double_quant ? " nested " : " ") + std::to_string(n) +
          "x" + std::to_string(k),
      copies, [&](int64_t c) { return nf4_layer(n, k, 100 + c, compute_dtype, double_quant); });
  qplug::bench::run_cold_linear(state, layers, copies, m, n, k, weight_bytes);
  set_isa_label(state);
}

void BM_Nf4Linear(benchmark::State& state) {
  nf4_linear(state, "float32");
}

// bnb_4bit_compute_dtype bfloat16 (what most published bnb checkpoints use): inputs, code values
// and outputs rounded to bfloat16, so the GEMV decodes two bytes per code value instead of four.
void BM_Nf4LinearBf16Compute(benchmark::State& state) {
  nf4_linear(state, "bfloat16");
}

// bnb_4bit_use_double_quant (as QLoRA checkpoints): the matmuls decode each run of rows' one-byte
// scales before multiplying it. Compare the time with BM_Nf4Linear's.
void BM_Nf4LinearDoubleQuant(benchmark::State& state) {
  nf4_linear(state, "float32", /*double_quant=*/true);
}

// LLM.int8 (llm_int8_threshold 6.0; the randn inputs have no outlier column): int8 weights, the
// inputs quantized row-wise on every call, an int32 matmul, the scales applied in float32.
const QuantConfig& int8_config() {
  static const QuantConfig config = [] {
    Value raw = Value::map();
    raw.set("load_in_8bit", true);
    return make_schema("bitsandbytes_8bit").validate(raw);
  }();
  return config;
}

void BM_Int8Linear(benchmark::State& state) {
  c10::InferenceMode guard;
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const int64_t weight_bytes = n * k + n * 4;
  const int64_t copies = qplug::bench::cold_copies(weight_bytes);
  const auto& layers = qplug::bench::layer_copies(
      "int8 " + std::to_string(n) + "x" + std::to_string(k), copies, [&](int64_t c) {
        LinearKernelArgs args;
        args.layer = "bench";
        args.shape = {k, n, false};
        args.config = &int8_config();
        auto layer = make_eight_bit_kernel(args);
        at::Generator gen = at::detail::createCPUGenerator(200 + c);
        layer->load_tensor("weight", at::randn({n, k}, gen) * 0.02);
        layer->process_weights_after_loading();
        return layer;
      });
  qplug::bench::run_cold_linear(state, layers, copies, m, n, k, weight_bytes);
  set_isa_label(state);
}

void Shapes(benchmark::internal::Benchmark* b, bool with_temperature) {
  for (int64_t n : {4096, 11008})
    for (int64_t m : {1, 16, 128}) {
      if (with_temperature) {
        b->Args({m, n, 4096, 1});
        if (m == 1) b->Args({m, n, 4096, 0});
      } else {
        b->Args({m, n, 4096});
      }
    }
  // Llama-7B's down_proj: rows of 11008, longer than the interleaved layout takes (4-bit layers
  // keep such rows as two tensors).
  if (with_temperature) b->Args({1, 4096, 11008, 1});
}
BENCHMARK(BM_DenseLinear)
    ->ArgNames({"M", "N", "K"})
    ->Apply([](auto* b) { Shapes(b, false); }) -> Unit(benchmark::kMicrosecond) -> UseRealTime();
BENCHMARK(BM_Nf4Linear)
    ->ArgNames({"M", "N", "K", "cold"})
    ->Apply([](auto* b) { Shapes(b, true); }) -> Unit(benchmark::kMicrosecond) -> UseRealTime();
BENCHMARK(BM_Nf4LinearBf16Compute)
    ->ArgNames({"M", "N", "K", "cold"})
    ->Apply([](auto* b) { Shapes(b, true); }) -> Unit(benchmark::kMicrosecond) -> UseRealTime();
BENCHMARK(BM_Nf4LinearDoubleQuant)
    ->ArgNames({"M", "N", "K", "cold"})
    ->Apply([](auto* b) { Shapes(b, true); }) -> Unit(benchmark::kMicrosecond) -> UseRealTime();
BENCHMARK(BM_Int8Linear)
    ->ArgNames({"M", "N", "K"})
    ->Apply([](auto* b) { Shapes(b, false); }) -> Unit(benchmark::kMicrosecond) -> UseRealTime();

}  // namespace
}  // namespace qplug::bnb

int main(int argc, char** argv) {
  return qplug::bench::run_benchmarks(argc, argv);
}
