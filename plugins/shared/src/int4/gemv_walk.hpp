// The walk over a GEMV's inputs and outputs that the SIMD int4 kernels share: inputs in groups of
// up to 4, outputs in whole strips of 64, then tiles of 16, then the few left to the scalar
// kernel. Each ISA file says how it multiplies one block.
//
// Included by kernel files compiled with different ISA flags. That is safe only because every
// instantiation takes the calling file's own lambda, whose type belongs to that file alone: no
// instantiation built with one file's flags can be picked by the linker for another file.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "int4/int4_kernels.hpp"

namespace qplug::int4 {

// How many tiles of 16 outputs a block holds: 4 (a whole strip) or 1.
template <int kTiles>
using Tiles = std::integral_constant<int, kTiles>;

// block(Tiles<n>{}, inputs, o, x_m, sums_m, y_m) for each group of `inputs` (1-4) inputs from m
// (x_m, sums_m and y_m moved to them) and each block of 16 * n outputs from o in [first, last), as
// Int4Kernels::gemv describes them.
template <typename Block>
inline void walk_gemv(const Int4View& w, const float* x, const float* sums, int64_t M,
                      int64_t first, int64_t last, float* y, int64_t y_stride, const Block& block) {
  const int64_t groups = w.in / w.group_size;
  for (int64_t m = 0; m < M; m += 4) {
    const int64_t inputs = std::min<int64_t>(4, M - m);
    const float* xm = x + m * w.in;
    const float* sm = sums + m * groups;
    float* ym = y + m * y_stride;
    int64_t o = first;
    for (; o + 64 <= last; o += 64)
      block(Tiles<4>{}, inputs, o, xm, sm, ym);
    for (; o + 16 <= last; o += 16)
      block(Tiles<1>{}, inputs, o, xm, sm, ym);
  }
  const int64_t tail = first + (last - first) / 16 * 16;
  if (tail < last) int4_scalar().gemv(w, x, sums, M, tail, last, y, y_stride);
}

}  // namespace qplug::int4
