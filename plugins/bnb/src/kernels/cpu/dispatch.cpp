// Picks the best CPU kernel implementation once, at run time.
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include <qplug/sdk/errors.hpp>

#include "kernels/cpu/cpu_kernels.hpp"

namespace qplug::bnb {

namespace {

bool has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}
bool has_avx2_vnni() {
  return has_avx2() && __builtin_cpu_supports("avxvnni");
}
bool has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}
bool has_avx512_vnni() {
  return has_avx512() && __builtin_cpu_supports("avx512vnni");
}
// (Every processor with AVX512-BF16 has AVX512-VNNI, which the set's int8 matmul uses; checked
// all the same.)
bool has_avx512_bf16() {
  return has_avx512_vnni() && __builtin_cpu_supports("avx512bf16");
}

// AMX-TILE, AMX-BF16 and AMX-INT8, the tile state enabled by the OS (XCR0 bits 17 and 18), and
// Linux's permission for this process to use it (arch_prctl ARCH_REQ_XCOMP_PERM, asked once;
// without it the first tile instruction kills the process).
bool has_amx_bf16() {
  static const bool usable = [] {
    if (!has_avx512_bf16()) return false;
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    const bool amx_bf16 = edx & (1u << 22), amx_tile = edx & (1u << 24),
               amx_int8 = edx & (1u << 25);
    if (!amx_bf16 || !amx_tile || !amx_int8) return false;
    uint32_t xcr0_low = 0, xcr0_high = 0;
    asm volatile("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
    if ((xcr0_low & (3u << 17)) != (3u << 17)) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return usable;
}

}  // namespace

std::vector<std::string> available_isas() {
  std::vector<std::string> isas{"scalar"};
  if (has_avx2()) isas.push_back("avx2");
  if (has_avx2_vnni()) isas.push_back("avx2_vnni");
  if (has_avx512()) isas.push_back("avx512");
  if (has_avx512_vnni()) isas.push_back("avx512_vnni");
  if (has_avx512_bf16()) isas.push_back("avx512_bf16");
  if (has_amx_bf16()) isas.push_back("avx512_amx");
  return isas;
}

const CpuKernels& cpu_kernels(const std::string& isa) {
  if (isa == "scalar") return scalar_kernels();
  if (isa == "avx2" && has_avx2()) return avx2_kernels();
  if (isa == "avx2_vnni" && has_avx2_vnni()) return avx2_vnni_kernels();
  if (isa == "avx512" && has_avx512()) return avx512_kernels();
  if (isa == "avx512_vnni" && has_avx512_vnni()) return avx512_vnni_kernels();
  if (isa == "avx512_bf16" && has_avx512_bf16()) return avx512_bf16_kernels();
  if (isa == "avx512_amx" && has_amx_bf16()) return avx512_amx_kernels();
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
