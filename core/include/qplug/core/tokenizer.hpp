// Text to token ids: SentencePiece (tokenizer.model, as Llama-family checkpoints ship it), and a
// plain token-id file format for data tokenized elsewhere.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qplug {

class Tokenizer {
 public:
  // Loads <folder>/tokenizer.model. Throws CheckpointError naming the file when it is missing or
  // not a SentencePiece model (then pass a .ids file instead of text).
  static Tokenizer load(const std::string& folder);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Without BOS/EOS.
  std::vector<int64_t> encode(const std::string& text) const;
  std::string decode(const std::vector<int64_t>& ids) const;
  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t vocab_size() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Token ids from a data file. A file ending in ".ids" holds whitespace-separated decimal token
// ids (e.g. written by `print(*tokenizer.encode(text))`); any other file is UTF-8 text, read
// whole with CRLF turned into LF and encoded at once, without BOS. Throws ConfigError naming the
// file (and line for a bad id); ids must lie in [0, vocab_size).
std::vector<int64_t> load_tokens(const std::string& path, const Tokenizer* tokenizer,
                                 int64_t vocab_size);

}  // namespace qplug
