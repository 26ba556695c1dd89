// The qplug error hierarchy. Every error the host or a plugin reports is one of these, and every
// message says what went wrong, where (file, line, key, module, tensor) and what to do about it.
//
// The classes have out-of-line destructors in libqplug_core, so their typeinfo lives in the core
// library and a plugin's exceptions can be caught by type in the host. The host never lets an
// exception object thrown by a plugin escape its guard: it copies it into a host-owned one.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

namespace qplug {

// Where a value came from ("quant.yaml:12:5"). line/column are 1-based; 0 means unknown.
struct SourceLocation {
  std::shared_ptr<const std::string> file;  // null when the value was built in code
  int line = 0;
  int column = 0;

  // "file:line:col", "file" or "" when nothing is known.
  std::string str() const;
  bool known() const { return file != nullptr; }
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message);
  ~Error() override;
  // A short name for the kind of error, e.g. "ConfigError"; used by the CLI's --json output.
  virtual const char* kind() const noexcept;
};

// A bad configuration value or file. what() is "<file>:<line>:<col>: key '<key>': <message>".
class ConfigError : public Error {
 public:
  ConfigError(const std::string& message, SourceLocation where = {}, std::string key = {});
  ~ConfigError() override;
  const char* kind() const noexcept override;
  const SourceLocation& where() const { return where_; }
  const std::string& key() const { return key_; }
  const std::string& detail() const { return detail_; }

 private:
  SourceLocation where_;
  std::string key_;
  std::string detail_;
};

// Why a library found on the plugin search path was not (or could not be) used.
enum class PluginLoadReason {
  NotFound,       // no plugin provides what was asked for
  NotAPlugin,     // not a shared library, or no qplug descriptor export
  LoadFailed,     // dlopen failed (missing dependency, unresolved symbol, ...)
  BadDescriptor,  // wrong magic, struct too small, name not [a-z0-9_-]+, ...
  AbiMismatch,    // built against another LibTorch / C++ ABI / CUDA than the host
  ApiMajorMismatch,
  ApiTooNew,       // plugin's SDK minor is newer than the host's
  Duplicate,       // a quant_method, kernel or patch another plugin already provides
  RegisterFailed,  // the register function threw
  MissingFactory,  // an entry was registered without a factory
  Shadowed,        // another library with the same plugin name came earlier in the search path
};
const char* to_string(PluginLoadReason reason);

class PluginLoadError : public Error {
 public:
  PluginLoadError(PluginLoadReason reason, std::string path, const std::string& message);
  ~PluginLoadError() override;
  const char* kind() const noexcept override;
  PluginLoadReason reason() const { return reason_; }
  const std::string& path() const { return path_; }

 private:
  PluginLoadReason reason_;
  std::string path_;
};

// A checkpoint file or folder that cannot be read or does not match the model.
class CheckpointError : public Error {
 public:
  CheckpointError(std::string file, std::string tensor, const std::string& message);
  ~CheckpointError() override;
  const char* kind() const noexcept override;
  const std::string& file() const { return file_; }
  const std::string& tensor() const { return tensor_; }
  const std::string& detail() const { return detail_; }  // the message without file and tensor

 private:
  std::string file_;
  std::string tensor_;
  std::string detail_;
};

// A valid request this build, model, device or plugin cannot do.
class UnsupportedError : public Error {
 public:
  explicit UnsupportedError(const std::string& message);
  ~UnsupportedError() override;
  const char* kind() const noexcept override;
};

// A kernel failed or was handed tensors it cannot work with.
class KernelError : public Error {
 public:
  explicit KernelError(const std::string& message);
  ~KernelError() override;
  const char* kind() const noexcept override;
};

// Any other exception that escaped plugin code, re-raised by the host with the plugin's name.
class PluginError : public Error {
 public:
  PluginError(std::string plugin, const std::string& message);
  ~PluginError() override;
  const char* kind() const noexcept override;
  const std::string& plugin() const { return plugin_; }

 private:
  std::string plugin_;
};

}  // namespace qplug
