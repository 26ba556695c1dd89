// The bnb kernel sets the tests run: every one this processor runs natively and, where it has
// AVX2, the AVX-512 and AVX-VNNI sets compiled against SIMDe ("avx512_simde", "avx512_bf16_simde",
// "avx2_vnni_simde"), so that their code is tested on every machine.
#pragma once

#include <string>
#include <vector>

#include "kernels/cpu/cpu_kernels.hpp"

namespace qplug::bnb {

std::vector<std::string> isas_under_test();
const CpuKernels& kernels_under_test(const std::string& isa);

}  // namespace qplug::bnb
