// The name under which kernel tests run an AVX-512 kernel set compiled against SIMDe
// (avx512_on_simde.hpp), and when they do: on a processor with AVX2 (the emulation's translation
// unit is compiled with -mavx2) but without AVX-512 (where the native set is tested instead).
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace qplug::testing {

inline const char* const kAvx512Simde = "avx512_simde";

// `native`: the dispatcher's list of sets this processor runs. Returns it, plus kAvx512Simde
// where that applies.
inline std::vector<std::string> with_avx512_simde(std::vector<std::string> native) {
  const auto has = [&](const char* isa) {
    return std::find(native.begin(), native.end(), isa) != native.end();
  };
  if (has("avx2") && !has("avx512")) native.push_back(kAvx512Simde);
  return native;
}

}  // namespace qplug::testing
