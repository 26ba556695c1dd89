// GPTQ on the CPU: the two halves of quantizing one 4096x4096 layer from 128 x 512 calibration
// tokens (Hessian accumulation, then the solve, with and without act-order), and the int4 GPTQ
// kernel's GEMV/GEMM as effective weight bandwidth next to dense fp32 and the machine's measured
// read bandwidth. The reference Python GPTQ (gptq.py on LibTorch, this 2-core machine) takes
// ~25 s to accumulate that Hessian and ~5.4 s (act_order off) / ~6.0 s (on) to solve it; the
// counters report the speedup against those. Results are reported, never asserted.
#include <benchmark/benchmark.h>

#include <cmath>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "bench_support.hpp"
#include "gptq_algorithm.hpp"
#include "gptq_config.hpp"
#include "gptq_kernel.hpp"
#include "int4/int4_kernels.hpp"
#include "packing.hpp"
#include "qplug/sdk/value.hpp"

namespace qplug::gptq {
namespace {

constexpr int64_t kColumns = 4096;
constexpr int64_t kSamples = 128, kSeqLen = 512;
// The host hands calibration inputs over in batches of 2048 tokens (4 windows of 512).
constexpr int64_t kBatchSamples = 4;
constexpr double kReferenceHessianSeconds = 25.0;

// Activations with a realistic spread: a few channels much larger than the rest, as in LLMs.
at::Tensor calibration_batch(uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const at::Tensor channel_scale = at::exp(at::randn({kColumns}, gen));
  return at::randn({kBatchSamples, kSeqLen, kColumns}, gen) * channel_scale;
}

void BM_GptqHessian(benchmark::State& state) {
  c10::InferenceMode guard;
  // 4 distinct batches cycled 8 times: 128 windows, without 1 GiB of inputs in memory.
  std::vector<at::Tensor> batches;
  for (uint64_t s = 0; s < 4; ++s)
    batches.push_back(calibration_batch(s));
  for (auto _ : state) {
    HessianAccumulator h(kColumns);
    for (int64_t b = 0; b < kSamples / kBatchSamples; ++b)
      h.add_batch(batches[b % batches.size()]);
    benchmark::DoNotOptimize(h.hessian());
  }
  state.counters["tokens_per_s"] = benchmark::Counter(
      static_cast<double>(kSamples * kSeqLen), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["speedup_vs_reference"] =
      benchmark::Counter(kReferenceHessianSeconds, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_GptqHessian)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(2);

// gptq.py's add_batch as written, in LibTorch: the full X^T X of each call through one matmul, a
// fresh product tensor each time. samples_per_call 1 is how optimum (batch_size 1) and GPTQModel
// feed it, one 512-token window per call; 4 is the host's 2048-token batches. The same arithmetic
// as the Python reference without its interpreter, so the ratio to BM_GptqHessian measured in one
// process is what the symmetric update and the reused buffers buy.
void BM_ReferenceHessian(benchmark::State& state) {
  c10::InferenceMode guard;
  const int64_t per_call = state.range(0);
  std::vector<at::Tensor> batches;
  for (uint64_t s = 0; s < 4; ++s)
    batches.push_back(calibration_batch(s));
  for (auto _ : state) {
    at::Tensor h = at::zeros({kColumns, kColumns});
    int64_t seen = 0;
    for (int64_t b = 0; b < kSamples / kBatchSamples; ++b) {
      const at::Tensor& batch = batches[b % batches.size()];
      for (int64_t s = 0; s < kBatchSamples; s += per_call) {
        const at::Tensor x = batch.narrow(0, s, per_call);
        h.mul_(static_cast<double>(seen) / static_cast<double>(seen + per_call));
        seen += per_call;
        const at::Tensor inp = x.reshape({-1, kColumns}).t() * std::sqrt(2.0 / seen);
        h.add_(at::matmul(inp, inp.t()));
      }
    }
    benchmark::DoNotOptimize(h);
  }
  state.counters["tokens_per_s"] = benchmark::Counter(
      static_cast<double>(kSamples * kSeqLen), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ReferenceHessian)
    ->ArgName("samples_per_call")
    ->Arg(1)
    ->Arg(4)
    ->Unit(benchmark::kSecond)
    ->UseRealTime()
    ->Iterations(2);

void BM_GptqSolve(benchmark::State& state) {
  c10::InferenceMode guard;
  const bool act_order = state.range(0) != 0;
  HessianAccumulator acc(kColumns);
  for (uint64_t s = 0; s < 4; ++s)
    acc.add_batch(calibration_batch(10 + s));
  const at::Tensor hessian = acc.hessian().clone();
  at::Generator gen = at::detail::createCPUGenerator(99);
  const at::Tensor weight = at::randn({kColumns, kColumns}, gen) * 0.02;
  GptqOptions options;  // optimum's defaults: 4 bits, group 128, symmetric, damp 0.1
  options.percdamp = 0.1;
  options.act_order = act_order;
  for (auto _ : state)
    benchmark::DoNotOptimize(quantize_layer(weight, hessian, options));
  state.counters["speedup_vs_reference"] =
      benchmark::Counter(act_order ? 6.0 : 5.4, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_GptqSolve)
    ->ArgName("act_order")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime()
    ->Iterations(2);

const QuantConfig& gptq_config(bool desc_act) {
  static const auto make = [](bool act) {
    Value raw = Value::map();
    raw.set("bits", 4);
    raw.set("group_size", 128);
    raw.set("desc_act", act);
    return make_schema().validate(raw);
  };
  static const QuantConfig plain = make(false), act = make(true);
  return desc_act ? act : plain;
}

// A packed 4-bit GPTQ layer [n, k] with random codes; act-order layers get a shuffled g_idx.
std::unique_ptr<LinearKernel> int4_layer(int64_t n, int64_t k, bool act_order, uint64_t seed) {
  LinearKernelArgs args;
  args.layer = "bench";
  args.shape = {k, n, false};
  args.config = &gptq_config(act_order);
  args.pre_quantized = true;
  auto kernel = make_gptq_kernel(args);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const int64_t groups = k / 128;
  const at::Tensor codes = at::randint(0, 16, {n, k}, gen, at::kByte);
  const at::Tensor zeros = at::randint(1, 16, {n, groups}, gen, at::kByte);
  at::Tensor g_idx = at::arange(k, at::kInt).div(128, "floor").to(at::kInt);
  if (act_order) g_idx = g_idx.index({at::randperm(k, gen)}).contiguous();
  kernel->load_tensor("qweight", packing::pack_gptq_qweight(codes, 4));
  kernel->load_tensor("qzeros", packing::pack_gptq_qzeros(zeros, 4, true));
  kernel->load_tensor("scales", (at::rand({groups, n}, gen) * 0.01).to(at::kHalf));
  kernel->load_tensor("g_idx", g_idx);
  kernel->process_weights_after_loading();
  return kernel;
}

void BM_GptqInt4Linear(benchmark::State& state) {
  c10::InferenceMode guard;
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const bool act_order = state.range(3) != 0;
  const int64_t groups = k / 128;
  // Codes, fp16 scales and 4-bit zeros: what a GEMV has to read.
  const int64_t weight_bytes = n * k / 2 + groups * n * 2 + groups * n / 2;
  const int64_t copies = qplug::bench::cold_copies(weight_bytes);
  const auto& layers = qplug::bench::layer_copies(
      std::string(act_order ? "gptq act_order " : "gptq ") + std::to_string(n) + "x" +
          std::to_string(k),
      copies, [&](int64_t c) { return int4_layer(n, k, act_order, 100 + c); });
  qplug::bench::run_cold_linear(state, layers, copies, m, n, k, weight_bytes);
  state.SetLabel(int4::int4_kernels().isa);
}
BENCHMARK(BM_GptqInt4Linear)
    ->ArgNames({"M", "N", "K", "act_order"})
    ->Apply([](auto* b) {
      for (int64_t n : {4096, 11008})
        for (int64_t m : {1, 16, 128})
          b->Args({m, n, 4096, 0});
      b->Args({1, 4096, 4096, 1});
    }) -> Unit(benchmark::kMicrosecond) -> UseRealTime();

}  // namespace
}  // namespace qplug::gptq

int main(int argc, char** argv) {
  return qplug::bench::run_benchmarks(argc, argv);
}
