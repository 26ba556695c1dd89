// A C interface to SentencePiece, built as its own small library and loaded with RTLD_DEEPBIND.
//
// Why: Debian's libsentencepiece embeds its own copy of protobuf-lite (3.14) and exports all of
// its symbols, while LibTorch links the system protobuf (3.21). Linked into one process, either
// protobuf's static initialisers bind to the other's symbols and crash, or SentencePiece's
// version check aborts. Loaded RTLD_LOCAL | RTLD_DEEPBIND, this library and SentencePiece resolve
// protobuf to SentencePiece's own copy and nothing of it leaks into the global scope.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sentencepiece_processor.h>

namespace {
void set_error(char* error, size_t size, const std::string& message) {
  if (error == nullptr || size == 0) return;
  std::strncpy(error, message.c_str(), size - 1);
  error[size - 1] = '\0';
}
}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* qplug_sp_load(const char* path, char* error,
                                                           size_t error_size) {
  auto* processor = new sentencepiece::SentencePieceProcessor();
  const auto status = processor->Load(path);
  if (!status.ok()) {
    set_error(error, error_size, status.ToString());
    delete processor;
    return nullptr;
  }
  return processor;
}

__attribute__((visibility("default"))) void qplug_sp_free(void* handle) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

__attribute__((visibility("default"))) int qplug_sp_encode(void* handle, const char* text,
                                                           size_t length, int** ids, size_t* count,
                                                           char* error, size_t error_size) {
  std::vector<int> out;
  const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(
      std::string(text, length), &out);
  if (!status.ok()) {
    set_error(error, error_size, status.ToString());
    return 1;
  }
  *count = out.size();
  *ids = static_cast<int*>(std::malloc(sizeof(int) * (out.empty() ? 1 : out.size())));
  std::memcpy(*ids, out.data(), sizeof(int) * out.size());
  return 0;
}

__attribute__((visibility("default"))) int qplug_sp_decode(void* handle, const int* ids,
                                                           size_t count, char** text,
                                                           size_t* length, char* error,
                                                           size_t error_size) {
  std::string out;
  const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Decode(
      std::vector<int>(ids, ids + count), &out);
  if (!status.ok()) {
    set_error(error, error_size, status.ToString());
    return 1;
  }
  *length = out.size();
  *text = static_cast<char*>(std::malloc(out.size() + 1));
  std::memcpy(*text, out.c_str(), out.size() + 1);
  return 0;
}

__attribute__((visibility("default"))) void qplug_sp_release(void* memory) {
  std::free(memory);
}

__attribute__((visibility("default"))) int qplug_sp_bos(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->bos_id();
}
__attribute__((visibility("default"))) int qplug_sp_eos(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->eos_id();
}
__attribute__((visibility("default"))) int qplug_sp_vocab(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->GetPieceSize();
}

}  // extern "C"
