// Packing the 4-bit codes of a Llama MLP layer (11008 x 4096) into the GPTQ and AWQ checkpoint
// layouts and back, as saving or loading a model does once per layer: codes per second. (Moved
// here from a unit test that asserted a time; timings are reported, never asserted.)
#include <benchmark/benchmark.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include "bench_support.hpp"
#include "packing.hpp"

namespace qplug::packing {
namespace {

constexpr int64_t kOut = 11008, kIn = 4096, kGroupSize = 128;

at::Tensor random_codes(int64_t rows, int64_t cols, int bits, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randint(0, int64_t{1} << bits, {rows, cols}, gen, at::kLong).to(at::kByte);
}

const at::Tensor& codes() {
  static const at::Tensor q = random_codes(kOut, kIn, 4, 7);
  return q;
}
const at::Tensor& zeros() {
  static const at::Tensor z = random_codes(kOut, kIn / kGroupSize, 4, 8);
  return z;
}

// Runs `step` once per iteration and reports the layer's codes per second.
template <typename Step>
void codes_per_second(benchmark::State& state, Step step) {
  c10::InferenceMode guard;
  for (auto _ : state)
    benchmark::DoNotOptimize(step());
  state.counters["codes_per_s"] = benchmark::Counter(static_cast<double>(kOut * kIn),
                                                     benchmark::Counter::kIsIterationInvariantRate);
}

void BM_PackGptq4bit(benchmark::State& state) {
  const at::Tensor& q = codes();
  codes_per_second(state, [&] { return pack_gptq_qweight(q, 4); });
}
BENCHMARK(BM_PackGptq4bit)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_PackGptq3bit(benchmark::State& state) {
  const at::Tensor q3 = codes().bitwise_and(7);
  codes_per_second(state, [&] { return pack_gptq_qweight(q3, 3); });
}
BENCHMARK(BM_PackGptq3bit)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_UnpackGptq4bit(benchmark::State& state) {
  const at::Tensor packed = pack_gptq_qweight(codes(), 4);
  codes_per_second(state, [&] { return unpack_gptq_qweight(packed, 4, kIn); });
}
BENCHMARK(BM_UnpackGptq4bit)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_PackAwqGemm(benchmark::State& state) {
  const at::Tensor& q = codes();
  codes_per_second(state, [&] { return pack_awq_gemm(q); });
}
BENCHMARK(BM_PackAwqGemm)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_PackAwqGemv(benchmark::State& state) {
  const at::Tensor& q = codes();
  codes_per_second(state, [&] { return pack_awq_gemv(q); });
}
BENCHMARK(BM_PackAwqGemv)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_AwqToGptqV1(benchmark::State& state) {
  const at::Tensor awq = pack_awq_gemm(codes()), awq_zeros = pack_awq_gemm_zeros(zeros());
  codes_per_second(state, [&] { return awq_to_gptq_v1(awq, awq_zeros).qweight; });
}
BENCHMARK(BM_AwqToGptqV1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace qplug::packing

int main(int argc, char** argv) {
  return qplug::bench::run_benchmarks(argc, argv);
}
