// The walk over a batch of inputs that the register-blocked int8 matmuls share: blocks of kInputs
// inputs, then one block of the fewer left, each with the count as a compile-time constant so
// that the kernel compiles a register block for it.
//
// Included by kernel files compiled with different ISA flags. That is safe only because every
// instantiation takes the calling file's own lambda, whose type belongs to that file alone: no
// instantiation built with one file's flags can be picked by the linker for another file (the
// reason the kernel files instantiate no library template; see scratch.cpp).
#pragma once

#include <cstdint>
#include <type_traits>

namespace qplug::bnb {

template <int kCount>
using InputCount = std::integral_constant<int, kCount>;

// block(m, InputCount<count>{}) for the last `count` (1 <= count <= kMax) inputs, from m.
template <int kMax, typename Block>
inline void last_input_block(int64_t count, int64_t m, const Block& block) {
  if constexpr (kMax >= 1) {
    if (count == kMax)
      block(m, InputCount<kMax>{});
    else
      last_input_block<kMax - 1>(count, m, block);
  }
}

// block(m, InputCount<n>{}) for inputs m .. m + n - 1 of M: n = kInputs, then the n < kInputs left.
template <int kInputs, typename Block>
inline void for_each_input_block(int64_t M, const Block& block) {
  int64_t m = 0;
  for (; m + kInputs <= M; m += kInputs)
    block(m, InputCount<kInputs>{});
  if (m < M) last_input_block<kInputs - 1>(M - m, m, block);
}

}  // namespace qplug::bnb
