// AWQ on the CPU: searching and quantizing one decoder block of Llama-7B's shape (hidden 4096,
// MLP 11008, 32 heads, no grouped-query attention, so all four scaling groups), and the AWQ GEMM
// kernel's GEMV/GEMM as effective weight bandwidth next to dense fp32 and the measured read
// bandwidth. Results are reported, never asserted.
//
// The search runs each group's inspected module 21 times over every calibration token, so its
// time grows with the tokens: AutoAWQ's 128 x 512 tokens cost ~700 TFLOP in all, 73 minutes of
// this 2-core machine. The block benchmark therefore takes the window count from the command
// line (`--samples_of_512=N`, default 2, so that a run stays short) and reports seconds per 1k
// tokens too.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include <benchmark/benchmark.h>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "awq_config.hpp"
#include "awq_kernel.hpp"
#include "bench_support.hpp"
#include "int4/int4_kernels.hpp"
#include "packing.hpp"
#include "qplug/core/models.hpp"
#include "qplug/core/plugin_host.hpp"
#include "qplug/core/quantizer_choice.hpp"
#include "qplug/core/services.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug::awq {
namespace {

Value llama7b_block_config() {
  Value c = Value::map();
  c.set("model_type", "llama");
  c.set("vocab_size", 256);
  c.set("hidden_size", 4096);
  c.set("intermediate_size", 11008);
  c.set("num_hidden_layers", 1);
  c.set("num_attention_heads", 32);
  c.set("num_key_value_heads", 32);
  c.set("max_position_embeddings", 2048);
  c.set("rms_norm_eps", 1e-5);
  c.set("torch_dtype", "float32");
  return c;
}

void BM_AwqLlama7bBlock(benchmark::State& state) {
  c10::InferenceMode guard;
  const int64_t samples = state.range(0), seq_len = 512;
  PluginHostOptions host_options;
  host_options.use_environment = false;
  const PluginHost host(host_options);
  const Value config = [] {
    Value raw = Value::map();
    raw.set("quant_method", "awq");
    return raw;
  }();
  at::Generator gen = at::detail::createCPUGenerator(5);
  std::vector<std::vector<int64_t>> windows;
  for (int64_t s = 0; s < samples; ++s) {
    const at::Tensor ids = at::randint(0, 256, {seq_len}, gen, at::kLong);
    windows.emplace_back(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + seq_len);
  }
  const CalibrationData data(std::move(windows));
  for (auto _ : state) {
    state.PauseTiming();
    ModelBuildOptions build;
    build.device = "cpu";
    auto model = build_model(llama7b_block_config(), build);
    init_random_weights(*model, 1);
    const QuantizerHandle handle = choose_quantizer(host, model->hf_config(), &config);
    CoreServices services(host);
    state.ResumeTiming();
    benchmark::DoNotOptimize(handle.quantize_model(*model, data, services));
  }
  state.counters["tokens"] = static_cast<double>(samples * seq_len);
  // Seconds per 1000 calibration tokens: the inverse of a rate of tokens / 1000 per second.
  state.counters["s_per_1k_tokens"] = benchmark::Counter(
      static_cast<double>(samples * seq_len) / 1000.0,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
// `--samples_of_512=N` from the command line (removed from argv), or 2; nullopt if malformed.
std::optional<int64_t> take_sample_count(int& argc, char** argv) {
  const std::string flag = "--samples_of_512=";
  int64_t samples = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind(flag, 0) != 0) continue;
    const std::string value = arg.substr(flag.size());
    char* end = nullptr;
    samples = std::strtoll(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || samples < 1) return std::nullopt;
    std::copy(argv + i + 1, argv + argc, argv + i);
    --argc;
    --i;
  }
  return samples;
}

const QuantConfig& gemm_config() {
  static const QuantConfig config = [] {
    Value raw = Value::map();
    raw.set("group_size", 128);
    return make_schema().validate(raw);
  }();
  return config;
}

// A packed AWQ GEMM layer [n, k] with random codes.
std::unique_ptr<LinearKernel> gemm_layer(int64_t n, int64_t k, uint64_t seed) {
  LinearKernelArgs args;
  args.layer = "bench";
  args.shape = {k, n, false};
  args.config = &gemm_config();
  args.pre_quantized = true;
  auto kernel = make_awq_kernel(args);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const int64_t groups = k / 128;
  kernel->load_tensor("qweight",
                      packing::pack_awq_gemm(at::randint(0, 16, {n, k}, gen, at::kByte)));
  kernel->load_tensor(
      "qzeros", packing::pack_awq_gemm_zeros(at::randint(0, 16, {n, groups}, gen, at::kByte)));
  kernel->load_tensor("scales", (at::rand({groups, n}, gen) * 0.01).to(at::kHalf));
  kernel->process_weights_after_loading();
  return kernel;
}

void BM_AwqGemmLinear(benchmark::State& state) {
  c10::InferenceMode guard;
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const int64_t groups = k / 128;
  // Codes, fp16 scales and 4-bit zeros: what a GEMV has to read.
  const int64_t weight_bytes = n * k / 2 + groups * n * 2 + groups * n / 2;
  const int64_t copies = qplug::bench::cold_copies(weight_bytes);
  const auto& layers =
      qplug::bench::layer_copies("awq gemm " + std::to_string(n) + "x" + std::to_string(k), copies,
                                 [&](int64_t c) { return gemm_layer(n, k, 100 + c); });
  qplug::bench::run_cold_linear(state, layers, copies, m, n, k, weight_bytes);
  state.SetLabel(int4::int4_kernels().isa);
}
BENCHMARK(BM_AwqGemmLinear)
    ->ArgNames({"M", "N", "K"})
    ->Apply([](auto* b) {
      for (int64_t n : {4096, 11008})
        for (int64_t m : {1, 16, 128})
          b->Args({m, n, 4096});
    }) -> Unit(benchmark::kMicrosecond) -> UseRealTime();

}  // namespace
}  // namespace qplug::awq

int main(int argc, char** argv) {
  // The restart re-executes argv, so it must happen before the flag is taken out of it (the call
  // inside run_benchmarks is then a no-op).
  qplug::restart_with_sleeping_idle_threads(argv);
  const std::optional<int64_t> samples = qplug::awq::take_sample_count(argc, argv);
  if (!samples) {
    std::fprintf(stderr,
                 "bench_awq: --samples_of_512 takes a positive whole number of 512-token "
                 "calibration windows, e.g. --samples_of_512=128\n");
    return 1;
  }
  benchmark::RegisterBenchmark("BM_AwqLlama7bBlock", qplug::awq::BM_AwqLlama7bBlock)
      ->ArgName("samples_of_512")
      ->Arg(*samples)
      ->Unit(benchmark::kSecond)
      ->UseRealTime()
      ->Iterations(1);
  return qplug::bench::run_benchmarks(argc, argv);
}
