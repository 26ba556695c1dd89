// Shared pieces of the benchmark programs: a measured memory-bandwidth limit, and sets of weights
// large enough to be cold (not in cache) on every call.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>

#include "qplug/core/runtime.hpp"
#include "qplug/sdk/linear_kernel.hpp"
#include "qplug/sdk/tensor_memory.hpp"

namespace qplug::bench {

// A copy of t in the memory a loaded model's weights get (huge pages from 2 MiB up), so that
// baselines pay the same TLB costs as the quantized kernels, no more.
inline at::Tensor in_weight_memory(const at::Tensor& t) {
  at::Tensor out = empty_for_weights(t.sizes().vec(), t.scalar_type());
  out.copy_(t);
  return out;
}

// Read bandwidth in GB/s of this machine with all threads (a STREAM-like sum over 512 MiB of
// weight memory), measured once per process.
inline double read_bandwidth_gbps() {
  static const double gbps = [] {
    const int64_t n = (512ll << 20) / 4;
    at::Tensor big = empty_for_weights({n}, at::kFloat).fill_(1.0f);
    (void)big.sum().item<float>();  // fault the pages in
    double best = 1e30;
    for (int i = 0; i < 5; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      (void)big.sum().item<float>();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, s);
    }
    return n * 4.0 / best / 1e9;
  }();
  return gbps;
}

// The last-level cache's size: what the C library reports, at least 64 MiB (a guess where it
// reports nothing; these machines' L3 is 32-105 MiB).
inline int64_t last_level_cache_bytes() {
  const long reported = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return std::max<int64_t>(64ll << 20, reported > 0 ? reported : 0);
}

// How many copies of an object of `bytes` bytes to cycle through so that each use finds it out of
// the last-level cache.
inline int64_t cold_copies(int64_t bytes) {
  const int64_t llc = last_level_cache_bytes();
  return std::max<int64_t>(2, 2 * llc / std::max<int64_t>(bytes, 1) + 1);
}

// Google Benchmark calls a benchmark's function once or more to size the iteration count, then
// once per repetition. Building the cold copies of a layer on every call cost far more than the
// measurement (17 NF4 copies of 4096 x 4096 from randn: most of a minute per call, against under a
// second of timed calls), so the copies below are built once and kept for the next call that asks
// for the same layer. Only the last set is kept, so the sets of other shapes do not add up in
// memory.

// Copies of a random dense fp32 weight [n, k] in weight memory, enough to be cold on every call.
inline const std::vector<at::Tensor>& dense_copies(int64_t n, int64_t k) {
  static std::pair<int64_t, int64_t> kept_shape{-1, -1};
  static std::vector<at::Tensor> kept;
  if (kept_shape != std::make_pair(n, k)) {
    kept.clear();  // free the last shape's copies before making these
    const int64_t copies = cold_copies(n * k * 4);
    for (int64_t c = 0; c < copies; ++c)
      kept.push_back(in_weight_memory(at::randn({n, k}) * 0.02));
    kept_shape = {n, k};
  }
  return kept;
}

using LayerCopies = std::vector<std::unique_ptr<LinearKernel>>;
using MakeLayerCopy = std::function<std::unique_ptr<LinearKernel>(int64_t copy)>;

// At least `copies` copies of the quantized layer named `layer` (its kind and shape, e.g.
// "nf4 float32 4096x4096"), copy c made by make_copy(c). A set kept for the same layer is reused,
// grown where it has fewer copies.
inline const LayerCopies& layer_copies(const std::string& layer, int64_t copies,
                                       const MakeLayerCopy& make_copy) {
  static std::string kept_layer;
  static LayerCopies kept;
  if (kept_layer != layer) {
    kept.clear();
    kept_layer = layer;
  }
  while (static_cast<int64_t>(kept.size()) < copies)
    kept.push_back(make_copy(static_cast<int64_t>(kept.size())));
  return kept;
}

// Plain buffers of `bytes` bytes in weight memory, `copies` of them, each read by
// cold_read_seconds. Only the last size's set is kept, like the layers' copies.
inline const std::vector<at::Tensor>& read_copies(int64_t bytes, int64_t copies) {
  static int64_t kept_bytes = -1;
  static std::vector<at::Tensor> kept;
  if (kept_bytes != bytes) {
    kept.clear();
    kept_bytes = bytes;
  }
  while (static_cast<int64_t>(kept.size()) < copies)
    kept.push_back(empty_for_weights({(bytes + 7) / 8}, at::kLong).fill_(1));
  return kept;
}

// Seconds per call of just reading `bytes` bytes that are out of cache: every thread loads one word
// of each 64-byte line of an even, contiguous share of one buffer per call, with a kernel call's
// fork and join, cycling through `copies` buffers. That is all the traffic a kernel that reads
// `bytes` per call causes, with as many lines in flight as the core allows (summing every word
// with 16-byte loads read 16-27% less here), so it bounds such a kernel in the machine's present
// state. It reads less than the steady-state probe (bandwidth_GBps: one 512 MiB stream, 12-15%
// more in an interleaved harness) and swings with it (the probe read 36-87 GB/s over one day here).
// Median of 3 passes over all copies.
inline double cold_read_seconds(int64_t bytes, int64_t copies) {
  constexpr int kPasses = 3;
  constexpr int64_t kWordsPerLine = 64 / sizeof(int64_t);
  const std::vector<at::Tensor>& buffers = read_copies(bytes, copies);
  const auto read = [](const at::Tensor& buffer) {
    const int64_t* words = buffer.data_ptr<int64_t>();
    const int64_t lines = (buffer.numel() + kWordsPerLine - 1) / kWordsPerLine;
    const int64_t share = (lines + at::get_num_threads() - 1) / at::get_num_threads();
    at::parallel_for(0, lines, share, [&](int64_t begin, int64_t end) {
      int64_t sum = 0;
      for (int64_t line = begin; line < end; ++line)
        sum += words[line * kWordsPerLine];
      benchmark::DoNotOptimize(sum);
    });
  };
  for (const at::Tensor& buffer : buffers)
    read(buffer);
  std::vector<double> per_call(kPasses);
  for (double& seconds : per_call) {
    const auto t0 = std::chrono::steady_clock::now();
    for (const at::Tensor& buffer : buffers)
      read(buffer);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
              static_cast<double>(buffers.size());
  }
  std::nth_element(per_call.begin(), per_call.begin() + kPasses / 2, per_call.end());
  return per_call[kPasses / 2];
}

// Seconds per call of a dense fp32 at::linear [m, k] x [n, k]^T on cold weights: the baseline
// every quantized kernel is compared with (measured once per shape and process). The median of
// kDensePasses passes over all copies: on a shared machine one pass can be far off (a single pass
// once made a speedup read 3.3x where the BM_DenseLinear median of the same run gave 2.1x).
inline double dense_seconds(int64_t m, int64_t n, int64_t k) {
  constexpr int kDensePasses = 5;
  static std::map<std::tuple<int64_t, int64_t, int64_t>, double> cache;
  const auto key = std::make_tuple(m, n, k);
  if (cache.count(key)) return cache[key];
  c10::InferenceMode guard;
  const std::vector<at::Tensor>& weights = dense_copies(n, k);
  const at::Tensor x = at::randn({m, k});
  for (const auto& w : weights)
    (void)at::linear(x, w);
  std::vector<double> per_call(kDensePasses);
  for (double& seconds : per_call) {
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& w : weights)
      benchmark::DoNotOptimize(at::linear(x, w));
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
              static_cast<double>(weights.size());
  }
  std::nth_element(per_call.begin(), per_call.begin() + kDensePasses / 2, per_call.end());
  return cache[key] = per_call[kDensePasses / 2];
}

// Times a quantized linear [n, k] at batch m: the first `copies` of `layers` are cycled so that
// each call finds its weights cold (1: hot, the same weights every call), `weight_bytes` is what
// one call must read (codes, scales, zeros). Reports the effective weight GB/s, the machine's read
// bandwidth and the speedup over dense fp32; with cold weights also what a plain read of
// weight_bytes per call reaches, timed right after the calls (cold_read_GBps), and the share of it
// the layer reaches (of_cold_read).
inline void run_cold_linear(benchmark::State& state, const LayerCopies& layers, int64_t copies,
                            int64_t m, int64_t n, int64_t k, int64_t weight_bytes) {
  const at::Tensor x = at::randn({m, k});
  for (int64_t c = 0; c < copies; ++c)
    (void)layers[c]->apply(x);
  int64_t i = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state)
    benchmark::DoNotOptimize(layers[i++ % copies]->apply(x));
  const double call_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
      static_cast<double>(std::max<int64_t>(1, i));
  state.counters["weight_GBps"] = benchmark::Counter(static_cast<double>(weight_bytes),
                                                     benchmark::Counter::kIsIterationInvariantRate,
                                                     benchmark::Counter::kIs1000);
  if (copies > 1) {
    const double read_seconds = cold_read_seconds(weight_bytes, copies);
    state.counters["cold_read_GBps"] = static_cast<double>(weight_bytes) / read_seconds / 1e9;
    state.counters["of_cold_read"] = read_seconds / call_seconds;
  }
  state.counters["bandwidth_GBps"] = read_bandwidth_gbps();
  state.counters["speedup_vs_dense_fp32"] =
      benchmark::Counter(dense_seconds(m, n, k), benchmark::Counter::kIsIterationInvariantRate);
}

// Every benchmark program's main(): idle threads, LibTorch's threads and the allocator set up as
// the qplug command sets them, then Google Benchmark with its usual flags.
inline int run_benchmarks(int argc, char** argv) {
  restart_with_sleeping_idle_threads(argv);
  configure_cpu_threads();
  configure_allocator();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace qplug::bench
