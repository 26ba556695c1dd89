// empty_for_weights: large tensors in 2 MiB-aligned memory advised for huge pages, which lives as
// long as any tensor or view uses it; small ones as at::empty.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <ATen/ATen.h>

#include "qplug/sdk/tensor_memory.hpp"

namespace qplug {
namespace {

constexpr uintptr_t kHugePage = 2u << 20;

// The /proc/self/smaps entry of the mapping that holds `address`: its header line and fields
// ("" when no mapping holds it).
std::string mapping_of(const void* address) {
  const auto a = reinterpret_cast<uintptr_t>(address);
  std::ifstream smaps("/proc/self/smaps");
  std::string line, entry;
  bool inside = false;
  while (std::getline(smaps, line)) {
    const auto dash = line.find('-'), space = line.find(' ');
    const bool header = dash != std::string::npos && space != std::string::npos && dash < space &&
                        line.find(':') > space;
    if (header) {
      if (inside) return entry;
      const uintptr_t begin = std::stoull(line.substr(0, dash), nullptr, 16);
      const uintptr_t end = std::stoull(line.substr(dash + 1, space - dash - 1), nullptr, 16);
      inside = begin <= a && a < end;
      entry.clear();
    }
    if (inside) entry += line + "\n";
  }
  return inside ? entry : "";
}

bool kernel_has_transparent_huge_pages() {
  return std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/enabled");
}

TEST(EmptyForWeights, LargeTensorIsHugePageAlignedAndAdvised) {
  const at::Tensor t = empty_for_weights({3, 1 << 20}, at::kFloat);  // 12 MiB
  EXPECT_EQ(t.sizes().vec(), (std::vector<int64_t>{3, 1 << 20}));
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % kHugePage, 0u);
  t.fill_(1.5f);  // every byte writable
  EXPECT_EQ(t.sum().item<double>(), 1.5 * 3 * (1 << 20));
  const std::string mapping = mapping_of(t.data_ptr());
  ASSERT_FALSE(mapping.empty());
  if (!kernel_has_transparent_huge_pages()) GTEST_SKIP() << "no transparent huge pages here";
  // "hg": the mapping carries MADV_HUGEPAGE (whether the kernel found free huge pages is its own
  // affair: AnonHugePages may be 0 on a fragmented machine).
  const auto flags = mapping.find("VmFlags:");
  ASSERT_NE(flags, std::string::npos) << mapping;
  EXPECT_NE(mapping.find(" hg", flags), std::string::npos) << mapping;
}

TEST(EmptyForWeights, SmallTensorComesFromTheUsualAllocator) {
  const at::Tensor t = empty_for_weights({1000}, at::kByte);
  EXPECT_EQ(t.numel(), 1000);
  EXPECT_EQ(t.scalar_type(), at::kByte);
  EXPECT_TRUE(t.storage().data_ptr().get_deleter() ==
              at::empty({1}).storage().data_ptr().get_deleter());
}

TEST(EmptyForWeights, MemoryLivesWhileAViewUsesItAndIsUnmappedAfter) {
  at::Tensor t = empty_for_weights({4 << 20}, at::kByte);
  const void* address = t.data_ptr();
  at::Tensor view = t.slice(0, 1 << 20, 2 << 20);
  t.fill_(7);
  t.reset();
  EXPECT_FALSE(mapping_of(address).empty());
  EXPECT_EQ(view.min().item<int64_t>(), 7);
  view.reset();
  EXPECT_TRUE(mapping_of(address).empty()) << mapping_of(address);
}

}  // namespace
}  // namespace qplug
