// Picks the best CPU kernel implementation once, at run time.
#include <cstdlib>
#include <string>

#include <qplug/sdk/errors.hpp>

#include "kernels/cpu/cpu_kernels.hpp"

namespace qplug::bnb {

namespace {

bool has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
bool has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}
bool has_avx512_bf16() {
  return has_avx512() && __builtin_cpu_supports("avx512bf16");
}

}  // namespace

std::vector<std::string> available_isas() {
  std::vector<std::string> isas{"scalar"};
  if (has_avx2()) isas.push_back("avx2");
  if (has_avx512()) isas.push_back("avx512");
  if (has_avx512_bf16()) isas.push_back("avx512_bf16");
  return isas;
}

const CpuKernels& cpu_kernels(const std::string& isa) {
  if (isa == "scalar") return scalar_kernels();
  if (isa == "avx2" && has_avx2()) return avx2_kernels();
  if (isa == "avx512" && has_avx512()) return avx512_kernels();
  if (isa == "avx512_bf16" && has_avx512_bf16()) return avx512_bf16_kernels();
  std::string runs;
  for (const std::string& available : available_isas())
    runs += (runs.empty() ? "" : ", ") + available;
  throw UnsupportedError("bnb CPU kernels '" + isa +
                         "' are not available on this processor (it runs: " + runs + ")");
}

const CpuKernels& cpu_kernels() {
  static const CpuKernels& chosen = []() -> const CpuKernels& {
    if (const char* forced = std::getenv("QPLUG_BNB_ISA")) return cpu_kernels(forced);
    return cpu_kernels(available_isas().back());
  }();
  return chosen;
}

}  // namespace qplug::bnb
