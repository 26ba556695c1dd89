// Paths and small helpers shared by the tests.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

// SentencePiece is loaded with RTLD_DEEPBIND, which AddressSanitizer refuses: tests that tokenize
// text skip themselves in sanitizer builds.
#if defined(__SANITIZE_ADDRESS__)
#define QPLUG_SKIP_WITHOUT_SENTENCEPIECE() \
  GTEST_SKIP() << "SentencePiece cannot be loaded under AddressSanitizer"
#else
#define QPLUG_SKIP_WITHOUT_SENTENCEPIECE() (void)0
#endif

namespace qplug::testing {

// ../shared beside the checkout: real models, corpora and upstream vectors.
inline std::filesystem::path shared_dir() {
  return QPLUG_SHARED_DIR;
}
inline std::filesystem::path source_dir() {
  return QPLUG_SOURCE_DIR;
}
inline std::filesystem::path binary_dir() {
  return QPLUG_BINARY_DIR;
}
inline std::filesystem::path fixture_plugin_dir() {
  return QPLUG_FIXTURE_PLUGIN_DIR;
}

// A fresh, empty directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "qplug-test-XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    path_ = made ? std::filesystem::path(made) : std::filesystem::path();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace qplug::testing
