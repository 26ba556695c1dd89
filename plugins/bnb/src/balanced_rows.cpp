#include "balanced_rows.hpp"

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include <ATen/Parallel.h>

#include <qplug/sdk/errors.hpp>

namespace qplug::bnb {

namespace {

// The chunks [first, end) of one thread's share, claimed one at a time from either end: the owner
// from the front, other threads from the back. One word holds both counts (front in the low half,
// back in the high half, so a share holds fewer than 2^32 chunks), and a compare-and-swap claims a
// chunk that nobody else can also claim. A cache line each, so that claiming in one share does not
// slow down claims in another.
struct alignas(64) Share {
  int64_t first = 0, end = 0;
  std::atomic<uint64_t> claimed{0};

  // The chunk claimed, or -1 when the share is used up.
  int64_t claim(bool from_back) {
    uint64_t seen = claimed.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t front = seen & 0xFFFFFFFFu, back = seen >> 32;
      if (static_cast<int64_t>(front + back) >= end - first) return -1;
      const uint64_t next = from_back ? seen + (uint64_t{1} << 32) : seen + 1;
      if (claimed.compare_exchange_weak(seen, next, std::memory_order_relaxed))
        return from_back ? end - 1 - static_cast<int64_t>(back)
                         : first + static_cast<int64_t>(front);
    }
  }
};

}  // namespace

void for_row_chunks_balanced(int64_t rows, int64_t chunk_rows,
                             const std::function<void(int64_t first, int64_t last)>& body) {
  if (chunk_rows <= 0)  // a caller's bug: fail loudly instead of dividing by zero
    throw Error("for_row_chunks_balanced: chunk_rows is " + std::to_string(chunk_rows) +
                ", it must be positive");
  if (rows <= 0) return;
  const int64_t chunks = (rows + chunk_rows - 1) / chunk_rows;
  const int64_t shares = std::min<int64_t>(at::get_num_threads(), chunks);
  const auto run = [&](int64_t chunk) {
    body(chunk * chunk_rows, std::min(rows, (chunk + 1) * chunk_rows));
  };
  if (shares <= 1 || at::in_parallel_region()) {
    for (int64_t c = 0; c < chunks; ++c)
      run(c);
    return;
  }
  std::vector<Share> share(static_cast<size_t>(shares));
  for (int64_t s = 0; s < shares; ++s) {
    share[s].first = s * chunks / shares;
    share[s].end = (s + 1) * chunks / shares;
  }
  // One task per share, then the others' leftovers. Why: on this project's 2-vCPU machine the
  // thread on one vCPU took ~40% longer than the other over its even half of a cold bfloat16 GEMV,
  // call after call for the length of a session (whichever half or thread it was), so the faster
  // one idled for 20-60 us of each ~200 us call.
  at::parallel_for(0, shares, 1, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s)
      for (int64_t c; (c = share[s].claim(false)) >= 0;)
        run(c);
    for (int64_t k = 1; k < shares; ++k) {
      Share& other = share[(end - 1 + k) % shares];
      for (int64_t c; (c = other.claim(true)) >= 0;)
        run(c);
    }
  });
}

}  // namespace qplug::bnb
