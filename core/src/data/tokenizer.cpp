#include "qplug/core/tokenizer.hpp"

#include <filesystem>
#include <sstream>

#include <dlfcn.h>

#include "qplug/core/config_file.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {

namespace {

// The SentencePiece shim (sentencepiece_shim.cpp), loaded once per process and never unloaded.
struct Shim {
  void* (*load)(const char*, char*, size_t) = nullptr;
  void (*free_handle)(void*) = nullptr;
  int (*encode)(void*, const char*, size_t, int**, size_t*, char*, size_t) = nullptr;
  int (*decode)(void*, const int*, size_t, char**, size_t*, char*, size_t) = nullptr;
  void (*release)(void*) = nullptr;
  int (*bos)(void*) = nullptr;
  int (*eos)(void*) = nullptr;
  int (*vocab)(void*) = nullptr;
};

template <class F>
void bind(void* library, const char* name, F& slot) {
  slot = reinterpret_cast<F>(dlsym(library, name));
  if (slot == nullptr) throw UnsupportedError(std::string("the SentencePiece shim lacks ") + name);
}

const Shim& shim() {
  static const Shim loaded = [] {
#if defined(__SANITIZE_ADDRESS__)
    throw UnsupportedError(
        "SentencePiece tokenization is unavailable under AddressSanitizer (it must be loaded with "
        "RTLD_DEEPBIND, which the sanitizer runtime refuses); pass token ids in a .ids file");
#endif
    Dl_info info{};
    dladdr(reinterpret_cast<void*>(&shim), &info);
    const std::filesystem::path path =
        std::filesystem::path(info.dli_fname).parent_path() / "qplug" / "libqplug_sentencepiece.so";
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (library == nullptr)
      throw UnsupportedError(path.string() + " cannot be loaded (" + dlerror() +
                             "); reinstall qplug, or pass token ids in a .ids file");
    Shim s;
    bind(library, "qplug_sp_load", s.load);
    bind(library, "qplug_sp_free", s.free_handle);
    bind(library, "qplug_sp_encode", s.encode);
    bind(library, "qplug_sp_decode", s.decode);
    bind(library, "qplug_sp_release", s.release);
    bind(library, "qplug_sp_bos", s.bos);
    bind(library, "qplug_sp_eos", s.eos);
    bind(library, "qplug_sp_vocab", s.vocab);
    return s;
  }();
  return loaded;
}

}  // namespace

struct Tokenizer::Impl {
  void* handle = nullptr;
  ~Impl() {
    if (handle != nullptr) shim().free_handle(handle);
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::string& folder) {
  const std::string path = (std::filesystem::path(folder) / "tokenizer.model").string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw CheckpointError(path, "",
                          "missing: text needs the model's SentencePiece tokenizer; pass token "
                          "ids in a .ids file instead");
  char error[512] = {};
  auto impl = std::make_unique<Impl>();
  impl->handle = shim().load(path.c_str(), error, sizeof(error));
  if (impl->handle == nullptr)
    throw CheckpointError(path, "", std::string("not a SentencePiece model: ") + error);
  return Tokenizer(std::move(impl));
}

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
  int* ids = nullptr;
  size_t count = 0;
  char error[512] = {};
  if (shim().encode(impl_->handle, text.data(), text.size(), &ids, &count, error, sizeof(error)))
    throw UnsupportedError(std::string("SentencePiece could not encode: ") + error);
  std::vector<int64_t> out(ids, ids + count);
  shim().release(ids);
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> narrow(ids.begin(), ids.end());
  char* text = nullptr;
  size_t length = 0;
  char error[512] = {};
  if (shim().decode(impl_->handle, narrow.data(), narrow.size(), &text, &length, error,
                    sizeof(error)))
    throw UnsupportedError(std::string("SentencePiece could not decode: ") + error);
  std::string out(text, length);
  shim().release(text);
  return out;
}

int64_t Tokenizer::bos_id() const {
  return shim().bos(impl_->handle);
}
int64_t Tokenizer::eos_id() const {
  return shim().eos(impl_->handle);
}
int64_t Tokenizer::vocab_size() const {
  return shim().vocab(impl_->handle);
}

namespace {

std::vector<int64_t> parse_ids(const std::string& text, const std::string& path,
                               int64_t vocab_size) {
  std::vector<int64_t> ids;
  std::istringstream lines(text);
  std::string line;
  int line_number = 0;
  while (std::getline(lines, line)) {
    ++line_number;
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(word, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != word.size() || id < 0 || id >= vocab_size)
        throw ConfigError(
            "'" + word + "' is not a token id in [0, " + std::to_string(vocab_size) + ")",
            SourceLocation{std::make_shared<std::string>(path), line_number, 0});
      ids.push_back(id);
    }
  }
  return ids;
}

}  // namespace

std::vector<int64_t> load_tokens(const std::string& path, const Tokenizer* tokenizer,
                                 int64_t vocab_size) {
  const std::string text = read_text_file(path);
  std::vector<int64_t> ids;
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".ids") == 0) {
    ids = parse_ids(text, path, vocab_size);
  } else {
    if (tokenizer == nullptr)
      throw ConfigError(path +
                        ": text needs a tokenizer.model in the model folder (or pass token "
                        "ids in a .ids file)");
    std::string normalised;
    normalised.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i)
      if (!(text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) normalised += text[i];
    ids = tokenizer->encode(normalised);
    for (int64_t id : ids)
      if (id >= vocab_size)
        throw ConfigError(path + ": the tokenizer produced id " + std::to_string(id) +
                          ", outside the model's vocabulary of " + std::to_string(vocab_size));
  }
  if (ids.empty()) throw ConfigError(path + ": holds no tokens");
  return ids;
}

}  // namespace qplug
