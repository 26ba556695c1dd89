// Shared pieces of the benchmark programs: a measured memory-bandwidth limit, and sets of weights
// large enough to be cold (not in cache) on every call.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

namespace qplug::bench {

// Read bandwidth in GB/s of this machine with all threads (a STREAM-like sum over 512 MiB),
// measured once per process.
inline double read_bandwidth_gbps() {
  static const double gbps = [] {
    const int64_t n = (512ll << 20) / 4;
    at::Tensor big = at::ones({n});
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

// How many copies of an object of `bytes` bytes to cycle through so that each use finds it out of
// the last-level cache (assumed at most 64 MiB).
inline int64_t cold_copies(int64_t bytes) {
  const int64_t llc = 64ll << 20;
  return std::max<int64_t>(2, 2 * llc / std::max<int64_t>(bytes, 1) + 1);
}

}  // namespace qplug::bench
