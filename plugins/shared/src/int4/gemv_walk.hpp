// The walk over a GEMV's inputs and outputs that the SIMD int4 kernels share: inputs in groups of
// up to 4, outputs in whole strips of 64 (4 tiles of 16), then single tiles, then the few left to
// the scalar kernel. A strip is cut into passes of as many tiles as the ISA's registers hold
// accumulators for at that many inputs; each ISA file says how many, and how it multiplies a pass.
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

template <int kInputs>
using Inputs = std::integral_constant<int, kInputs>;
template <int kTiles>
using Tiles = std::integral_constant<int, kTiles>;

// The strip_tiles(k) ISA rule: at most how many tiles one pass multiplies for k inputs (1-4).
using StripTilesRule = int (*)(int);

// kTiles tiles from output o for kInputs inputs, in passes of at most strip_tiles(kInputs) tiles.
template <StripTilesRule strip_tiles, int kInputs, int kTiles, typename Pass>
inline void walk_passes(const Pass& pass, int64_t o, const float* x, const float* sums, float* y) {
  constexpr int kPassTiles = std::min(kTiles, strip_tiles(kInputs));
  for (int t = 0; t < kTiles; t += kPassTiles)
    pass(Inputs<kInputs>{}, Tiles<kPassTiles>{}, o + 16 * t, x, sums, y);
}

template <StripTilesRule strip_tiles, int kTiles, typename Pass>
inline void walk_inputs(const Pass& pass, int64_t inputs, int64_t o, const float* x,
                        const float* sums, float* y) {
  switch (inputs) {
    case 1:
      return walk_passes<strip_tiles, 1, kTiles>(pass, o, x, sums, y);
    case 2:
      return walk_passes<strip_tiles, 2, kTiles>(pass, o, x, sums, y);
    case 3:
      return walk_passes<strip_tiles, 3, kTiles>(pass, o, x, sums, y);
    default:
      return walk_passes<strip_tiles, 4, kTiles>(pass, o, x, sums, y);
  }
}

// pass(Inputs<k>{}, Tiles<n>{}, o, x_m, sums_m, y_m) for each group of k (1-4) inputs from m
// (x_m, sums_m and y_m moved to them) and each pass of 16 * n outputs from o in [first, last), as
// Int4Kernels::gemv describes them.
template <StripTilesRule strip_tiles, typename Pass>
inline void walk_gemv(const Int4View& w, const float* x, const float* sums, int64_t M,
                      int64_t first, int64_t last, float* y, int64_t y_stride, const Pass& pass) {
  const int64_t groups = w.in / w.group_size;
  for (int64_t m = 0; m < M; m += 4) {
    const int64_t inputs = std::min<int64_t>(4, M - m);
    const float* xm = x + m * w.in;
    const float* sm = sums + m * groups;
    float* ym = y + m * y_stride;
    int64_t o = first;
    for (; o + 64 <= last; o += 64)
      walk_inputs<strip_tiles, 4>(pass, inputs, o, xm, sm, ym);
    for (; o + 16 <= last; o += 16)
      walk_inputs<strip_tiles, 1>(pass, inputs, o, xm, sm, ym);
  }
  const int64_t tail = first + (last - first) / 16 * 16;
  if (tail < last) int4_scalar().gemv(w, x, sums, M, tail, last, y, y_stride);
}

}  // namespace qplug::int4
