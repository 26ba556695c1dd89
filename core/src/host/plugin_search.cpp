#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

#include <boost/dll/runtime_symbol_info.hpp>

#include "host/plugin_files.hpp"

namespace qplug {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> split_path_list(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t colon = list.find(':', start);
    const std::string item = list.substr(start, colon == std::string::npos ? colon : colon - start);
    if (!item.empty()) out.push_back(item);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return out;
}

std::string canonical_or_same(const std::string& path) {
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(path, ec);
  return ec ? path : canonical.string();
}

// The directory this very library (libqplug_core) was loaded from.
std::string core_library_dir() {
  boost::dll::fs::error_code ec;
  const auto location = boost::dll::this_line_location(ec);
  if (ec) return {};
  return canonical_or_same(location.parent_path().string());
}

}  // namespace

std::vector<SearchDir> build_search_path(const PluginHostOptions& options) {
  std::vector<SearchDir> dirs;
  std::set<std::string> seen;
  auto add = [&](const std::string& path, const char* origin) {
    const std::string canonical = canonical_or_same(path);
    if (!seen.insert(canonical).second) return;
    std::error_code ec;
    dirs.push_back(SearchDir{canonical, origin, fs::is_directory(canonical, ec)});
  };
  for (const auto& dir : options.plugin_dirs)
    add(dir, "plugin_dirs");
  if (options.use_environment) {
    if (const char* env = std::getenv("QPLUG_PLUGIN_PATH"))
      for (const auto& dir : split_path_list(env))
        add(dir, "QPLUG_PLUGIN_PATH");
  }
  if (options.use_default_dirs) {
    const std::string lib_dir = core_library_dir();
    if (!lib_dir.empty()) {
      // In the build tree the library sits in <build>/lib and plugins in <build>/lib/qplug/plugins,
      // the same layout as an install, so one rule finds both; only the label differs.
      const bool in_build_tree = lib_dir == canonical_or_same(QPLUG_BUILD_LIBRARY_DIR);
      add((fs::path(lib_dir) / QPLUG_PLUGIN_RELATIVE_DIR).string(),
          in_build_tree ? "build tree" : "install dir");
    }
  }
  return dirs;
}

std::vector<std::string> candidate_files(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& path = it->path();
    const std::string name = path.filename().string();
    if (name.empty() || name[0] == '.' || path.extension() != ".so") continue;
    std::error_code type_ec;
    if (!fs::is_regular_file(path, type_ec)) continue;  // follows symlinks
    files.push_back(path.string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace qplug
