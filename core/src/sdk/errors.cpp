#include "qplug/sdk/errors.hpp"

namespace qplug {

std::string SourceLocation::str() const {
  if (!file) return {};
  std::string out = *file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
  }
  return out;
}

Error::Error(const std::string& message) : std::runtime_error(message) {}
Error::~Error() = default;
const char* Error::kind() const noexcept {
  return "Error";
}

namespace {
std::string config_message(const std::string& message, const SourceLocation& where,
                           const std::string& key) {
  std::string out;
  if (where.known()) out += where.str() + ": ";
  if (!key.empty()) out += "key '" + key + "': ";
  return out + message;
}
}  // namespace

ConfigError::ConfigError(const std::string& message, SourceLocation where, std::string key)
    : Error(config_message(message, where, key)),
      where_(std::move(where)),
      key_(std::move(key)),
      detail_(message) {}
ConfigError::~ConfigError() = default;
const char* ConfigError::kind() const noexcept {
  return "ConfigError";
}

const char* to_string(PluginLoadReason reason) {
  switch (reason) {
    case PluginLoadReason::NotFound:
      return "not found";
    case PluginLoadReason::NotAPlugin:
      return "not a plugin";
    case PluginLoadReason::LoadFailed:
      return "load failed";
    case PluginLoadReason::BadDescriptor:
      return "bad descriptor";
    case PluginLoadReason::AbiMismatch:
      return "ABI mismatch";
    case PluginLoadReason::ApiMajorMismatch:
      return "API major mismatch";
    case PluginLoadReason::ApiTooNew:
      return "API too new";
    case PluginLoadReason::Duplicate:
      return "duplicate";
    case PluginLoadReason::RegisterFailed:
      return "register failed";
    case PluginLoadReason::MissingFactory:
      return "missing factory";
    case PluginLoadReason::Shadowed:
      return "shadowed";
  }
  return "unknown";
}

PluginLoadError::PluginLoadError(PluginLoadReason reason, std::string path,
                                 const std::string& message)
    : Error(message), reason_(reason), path_(std::move(path)) {}
PluginLoadError::~PluginLoadError() = default;
const char* PluginLoadError::kind() const noexcept {
  return "PluginLoadError";
}

namespace {
std::string checkpoint_message(const std::string& file, const std::string& tensor,
                               const std::string& message) {
  std::string out = file;
  if (!tensor.empty()) out += (out.empty() ? "" : ": ") + std::string("tensor '") + tensor + "'";
  return out.empty() ? message : out + ": " + message;
}
}  // namespace

CheckpointError::CheckpointError(std::string file, std::string tensor, const std::string& message)
    : Error(checkpoint_message(file, tensor, message)),
      file_(std::move(file)),
      tensor_(std::move(tensor)),
      detail_(message) {}
CheckpointError::~CheckpointError() = default;
const char* CheckpointError::kind() const noexcept {
  return "CheckpointError";
}

UnsupportedError::UnsupportedError(const std::string& message) : Error(message) {}
UnsupportedError::~UnsupportedError() = default;
const char* UnsupportedError::kind() const noexcept {
  return "UnsupportedError";
}

KernelError::KernelError(const std::string& message) : Error(message) {}
KernelError::~KernelError() = default;
const char* KernelError::kind() const noexcept {
  return "KernelError";
}

PluginError::PluginError(std::string plugin, const std::string& message)
    : Error(message), plugin_(std::move(plugin)) {}
PluginError::~PluginError() = default;
const char* PluginError::kind() const noexcept {
  return "PluginError";
}

}  // namespace qplug
