// Splits a matmul's output rows between at::parallel_for's threads so that the call ends when the
// work does, not when the slowest core finishes an equal share.
#pragma once

#include <cstdint>
#include <functional>

namespace qplug::bnb {

// Calls body(first, last) for consecutive row ranges that together cover [0, rows) exactly once,
// each range at most chunk_rows rows (chunk_rows > 0) and starting at a multiple of chunk_rows.
// body runs on several threads at once. Each thread first takes its own share's chunks front to
// back (one stream through memory, as an even split would), then takes the chunks left at the back
// of other shares. Which thread runs which rows varies from call to call, so body must give each
// row the same result whoever computes it. Called inside a parallel region, or with one thread, it
// runs the chunks in order on the calling thread.
void for_row_chunks_balanced(int64_t rows, int64_t chunk_rows,
                             const std::function<void(int64_t first, int64_t last)>& body);

}  // namespace qplug::bnb
