// The names under which kernel tests run AVX-512 kernel sets compiled against SIMDe
// (avx512_on_simde.hpp), and when they do: on every processor with AVX2 (the emulation's
// translation units are compiled with -mavx2). Where the processor runs a set natively both builds
// are tested, so a change that breaks only the emulated one shows before CI, which has no AVX-512.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace qplug::testing {

// The name of `isa` compiled against SIMDe.
inline std::string simde_name(const std::string& isa) {
  return isa + "_simde";
}

// `native`: the dispatcher's list of sets this processor runs. Returns it, plus the SIMDe build
// of each of `emulated` where the processor has AVX2.
inline std::vector<std::string> with_simde(std::vector<std::string> native,
                                           const std::vector<std::string>& emulated) {
  if (std::find(native.begin(), native.end(), "avx2") == native.end()) return native;
  for (const std::string& isa : emulated)
    native.push_back(simde_name(isa));
  return native;
}

}  // namespace qplug::testing
