// Work split between threads. The test programs run on LibTorch's default thread count, which is
// one on the project's machines, so no at::parallel_for splits its range unless a test asks for
// more threads: these helpers do.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

namespace qplug::testing {

// LibTorch's thread count for a scope.
class ThreadCount {
 public:
  explicit ThreadCount(int threads) { at::set_num_threads(threads); }
  ~ThreadCount() { at::set_num_threads(before_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  const int before_ = at::get_num_threads();
};

// compute() on one thread, then on 2 and on 3 (which splits ranges unevenly, at edges that are
// not multiples of the kernels' blocks): every tensor it returns must hold the same bits each
// time. Each thread works on its own rows with its own scratch, so nothing may depend on where a
// range was cut or on which thread ran it.
inline void expect_same_bits_on_more_threads(
    const std::function<std::vector<at::Tensor>()>& compute, const std::string& what) {
  std::vector<at::Tensor> on_one;
  {
    const ThreadCount one(1);
    on_one = compute();
  }
  for (const int threads : {2, 3}) {
    const ThreadCount scope(threads);
    ASSERT_EQ(at::get_num_threads(), threads) << what;
    const std::vector<at::Tensor> on_more = compute();
    ASSERT_EQ(on_more.size(), on_one.size()) << what;
    for (size_t i = 0; i < on_one.size(); ++i)
      EXPECT_TRUE(at::equal(on_more[i], on_one[i]))
          << what << ": result " << i << " differs on " << threads << " threads";
  }
}

}  // namespace qplug::testing
