// for_row_chunks_balanced: every row exactly once, in whole chunks, on any number of threads, under
// contention and inside a parallel region; and when one thread is held up, the others take the
// rest of its share.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/Parallel.h>

#include <qplug/sdk/errors.hpp>

#include "balanced_rows.hpp"
#include "thread_count.hpp"

namespace qplug::bnb {
namespace {

using testing::ThreadCount;

// Runs for_row_chunks_balanced and checks that it called body with whole chunks that cover every
// row once.
void expect_every_row_once(int64_t rows, int64_t chunk, const std::string& what) {
  std::vector<std::atomic<int>> seen(static_cast<size_t>(rows));
  for (auto& s : seen)
    s = 0;
  std::atomic<bool> bad_range{false};
  for_row_chunks_balanced(rows, chunk, [&](int64_t first, int64_t last) {
    if (first % chunk != 0 || last <= first || last - first > chunk || last > rows ||
        (last - first < chunk && last != rows))
      bad_range = true;
    for (int64_t r = first; r < last; ++r)
      ++seen[static_cast<size_t>(r)];
  });
  EXPECT_FALSE(bad_range) << what;
  for (int64_t r = 0; r < rows; ++r)
    ASSERT_EQ(seen[static_cast<size_t>(r)], 1) << what << ": row " << r;
}

TEST(BnbBalancedRows, CoversEveryRowOnceInWholeChunks) {
  for (const int threads : {1, 2, 3, 4})
    for (const int64_t rows : {0, 1, 15, 100, 1000})
      for (const int64_t chunk : {1, 16, 128}) {
        const ThreadCount scope(threads);
        ASSERT_EQ(at::get_num_threads(), threads);
        expect_every_row_once(rows, chunk,
                              std::to_string(rows) + " rows in chunks of " + std::to_string(chunk) +
                                  " on " + std::to_string(threads) + " threads");
      }
}

// One-row chunks whose body does almost nothing: threads finish their own shares at about the same
// time and then claim from the same shares at once.
TEST(BnbBalancedRows, CoversEveryRowOnceWhenThreadsClaimFromTheSameShares) {
  for (const int threads : {2, 4}) {
    const ThreadCount scope(threads);
    for (int repeat = 0; repeat < 20; ++repeat)
      expect_every_row_once(20000, 1,
                            "20000 one-row chunks on " + std::to_string(threads) +
                                " threads, repeat " + std::to_string(repeat));
  }
}

TEST(BnbBalancedRows, CoversEveryRowOnceInsideAParallelRegion) {
  const ThreadCount scope(2);
  std::atomic<int> calls{0};
  at::parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      expect_every_row_once(300, 16, "inside at::parallel_for");
      ++calls;
    }
  });
  EXPECT_EQ(calls, 2);
}

TEST(BnbBalancedRows, RefusesChunksOfNoRows) {
  EXPECT_THROW(for_row_chunks_balanced(10, 0, [](int64_t, int64_t) {}), Error);
}

// The first chunk to start blocks its thread until every other chunk is done. With even shares and
// no taking from others, the rest of the blocked thread's share would never run and the wait would
// time out.
TEST(BnbBalancedRows, OtherThreadsFinishTheShareOfAThreadThatIsHeldUp) {
  for (const int threads : {2, 3}) {
    const ThreadCount scope(threads);
    ASSERT_EQ(at::get_num_threads(), threads);
    constexpr int64_t kChunks = 24;
    std::mutex mutex;
    std::condition_variable all_others_done;
    int64_t done = 0;
    std::atomic<bool> first_started{false};
    bool others_finished = false;
    for_row_chunks_balanced(kChunks, 1, [&](int64_t, int64_t) {
      std::unique_lock<std::mutex> lock(mutex);
      if (!first_started.exchange(true)) {
        others_finished = all_others_done.wait_for(lock, std::chrono::seconds(60),
                                                   [&] { return done >= kChunks - 1; });
      } else if (++done >= kChunks - 1) {
        all_others_done.notify_all();
      }
    });
    EXPECT_TRUE(others_finished) << threads
                                 << " threads: the held-up thread's share was not taken over";
    EXPECT_EQ(done, kChunks - 1) << threads << " threads";
  }
}

}  // namespace
}  // namespace qplug::bnb
