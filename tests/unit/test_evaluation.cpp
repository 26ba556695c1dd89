// Perplexity and greedy generation: stories260K's published perplexity and story, the window and
// NLL arithmetic recomputed by hand on a tiny random model, and how data files become token ids
// (.ids files, CRLF text, the SentencePiece tokenizer).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model_test_util.hpp"
#include "qplug/core/evaluation.hpp"
#include "qplug/core/model_io.hpp"
#include "qplug/core/tokenizer.hpp"
#include "qplug/sdk/errors.hpp"
#include "test_support.hpp"

namespace qplug {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::TempDir;
using testing::write_bytes;

fs::path stories260k() {
  return testing::shared_dir() / "data/stories260K";
}
fs::path tinystories() {
  return testing::shared_dir() / "data/corpus/tinystories_val.txt";
}

// One load of stories260K and its tokenizer for the whole suite (loading is cheap, but the
// tokenizer's shim is process-wide anyway).
class Stories260K : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new LoadedModel(load_model(stories260k().string()));
#if !defined(__SANITIZE_ADDRESS__)  // the tests that tokenize skip themselves there
    tokenizer_ = new Tokenizer(Tokenizer::load(stories260k().string()));
#endif
  }
  static void TearDownTestSuite() {
    delete model_;
    delete tokenizer_;
  }
  void SetUp() override {
    QPLUG_SKIP_WITHOUT_SENTENCEPIECE();
  }
  static Model& model() {
    return *model_->model;
  }
  static const Tokenizer& tokenizer() {
    return *tokenizer_;
  }

 private:
  static LoadedModel* model_;
  static Tokenizer* tokenizer_;
};
LoadedModel* Stories260K::model_ = nullptr;
Tokenizer* Stories260K::tokenizer_ = nullptr;

TEST_F(Stories260K, TokenizerFacts) {
  EXPECT_EQ(tokenizer().bos_id(), 1);
  EXPECT_EQ(tokenizer().eos_id(), 2);
  EXPECT_EQ(tokenizer().vocab_size(), 512);
  const std::string text = "Once upon a time, there was a little girl.";
  const std::vector<int64_t> ids = tokenizer().encode(text);
  ASSERT_FALSE(ids.empty());
  EXPECT_NE(ids.front(), 1);  // no BOS added
  EXPECT_EQ(tokenizer().decode(ids), text);
}

// The number published with the data: window k = BOS + tokens [511k, 511k + 511), 40 windows,
// every prediction counted.
TEST_F(Stories260K, PerplexityOnTinyStoriesIs4257) {
  const std::vector<int64_t> tokens = load_tokens(tinystories().string(), &tokenizer(), 512);
  ASSERT_GE(tokens.size(), 40u * 511u);
  PerplexityOptions options;
  options.seq_len = 512;
  options.max_windows = 40;
  options.bos_id = tokenizer().bos_id();
  int64_t last_done = 0, calls = 0;
  options.progress = [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 40);
    EXPECT_GT(done, last_done);
    last_done = done;
    ++calls;
  };
  const PerplexityResult r = perplexity(model(), tokens, options);
  EXPECT_EQ(r.windows, 40);
  EXPECT_EQ(r.predictions, 20440);
  EXPECT_NEAR(r.perplexity, 4.257, 5e-4);
  EXPECT_NEAR(std::exp(r.mean_nll), r.perplexity, 1e-12);
  EXPECT_EQ(last_done, 40);
  EXPECT_EQ(calls, 10);  // batches of 4
}

std::vector<int64_t> once_upon_a_time(const Tokenizer& tokenizer) {
  std::vector<int64_t> prompt{tokenizer.bos_id()};
  for (int64_t id : tokenizer.encode("Once upon a time"))
    prompt.push_back(id);
  return prompt;
}

// `qplug generate --prompt "Once upon a time"`: BOS + the prompt, greedy.
TEST_F(Stories260K, GreedyStoryFromOnceUponATime) {
  const std::vector<int64_t> prompt = once_upon_a_time(tokenizer());
  const std::vector<int64_t> generated =
      generate_greedy(model(), prompt, 40, {tokenizer().eos_id()});
  ASSERT_EQ(generated.size(), 40u);
  std::vector<int64_t> all(prompt.begin() + 1, prompt.end());
  all.insert(all.end(), generated.begin(), generated.end());
  const std::string text = tokenizer().decode(all);
  // 40 tokens reach "She loved to play outside in the park. One day, she saw ..."; the golden
  // story goes on, so the 40 tokens must be a prefix of it that ends past "park.".
  const std::string golden =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, red ball.";
  EXPECT_EQ(golden.rfind(text, 0), 0u) << text;
  EXPECT_GT(text.size(), golden.find("park.")) << text;

  // A smaller budget gives a prefix of the same continuation.
  const std::vector<int64_t> five = generate_greedy(model(), prompt, 5, {tokenizer().eos_id()});
  EXPECT_EQ(five, std::vector<int64_t>(generated.begin(), generated.begin() + 5));
}

// stories260K (llama2.c) ends a story with BOS, its training delimiter, and never predicts EOS
// (2) there: stopping at id 1 ends the generation exactly at the end of the first story.
TEST_F(Stories260K, GreedyStoryStopsAtTheStopToken) {
  const std::vector<int64_t> prompt = once_upon_a_time(tokenizer());
  const int64_t limit = 400, stop = tokenizer().bos_id();
  const std::vector<int64_t> story =
      generate_greedy(model(), prompt, limit, {tokenizer().eos_id(), stop});
  ASSERT_LT(static_cast<int64_t>(story.size()), limit);
  for (int64_t id : story) {
    EXPECT_NE(id, stop);
    EXPECT_NE(id, tokenizer().eos_id());
  }
  std::vector<int64_t> sequence = prompt;
  sequence.insert(sequence.end(), story.begin(), story.end());
  const at::Tensor ids = at::tensor(sequence, at::TensorOptions().dtype(at::kLong)).unsqueeze(0);
  EXPECT_EQ(testing::logits_of(model(), ids)[0][-1].argmax().item<int64_t>(), stop);
  const std::string text = tokenizer().decode(story);
  EXPECT_TRUE(contains(text, "Lily")) << text;
  const std::string ending = "You are a good friend.\"";
  ASSERT_GE(text.size(), ending.size());
  EXPECT_EQ(text.substr(text.size() - ending.size()), ending) << text;
}

// Stopping on a tiny random model: the output is the unconstrained continuation cut before the
// first stop token, which is not included.
TEST(GenerateGreedy, StopsBeforeTheStopToken) {
  auto model = testing::random_model(testing::llama_family_config("llama"), 9, 0.3);
  const std::vector<int64_t> prompt{1, 5, 9};
  const std::vector<int64_t> free = generate_greedy(*model, prompt, 12, /*stop_ids=*/{});
  ASSERT_EQ(free.size(), 12u);
  // Greedy means each new token is the argmax after everything before it.
  std::vector<int64_t> sequence = prompt;
  for (int64_t id : free) {
    const at::Tensor ids = at::tensor(sequence, at::TensorOptions().dtype(at::kLong)).unsqueeze(0);
    EXPECT_EQ(testing::logits_of(*model, ids)[0][-1].argmax().item<int64_t>(), id);
    sequence.push_back(id);
  }
  const int64_t stop = free[4];
  const size_t first =
      static_cast<size_t>(std::find(free.begin(), free.end(), stop) - free.begin());
  const std::vector<int64_t> stopped = generate_greedy(*model, prompt, 12, {stop});
  EXPECT_EQ(stopped, std::vector<int64_t>(free.begin(), free.begin() + first));
  EXPECT_TRUE(generate_greedy(*model, prompt, 0, {stop}).empty());
}

// ---- the perplexity arithmetic, recomputed ------------------------------------------------------

TEST(Perplexity, MatchesANllComputedByHand) {
  auto model = testing::random_model(testing::llama_family_config("llama"), 3, 0.2);
  const int64_t seq_len = 8, stride = seq_len - 1, bos = 1;
  // 3 full windows and a partial one that must be dropped.
  const at::Tensor data = testing::random_ids(48, 1, 3 * stride + 4, 11).flatten();
  const std::vector<int64_t> tokens(data.data_ptr<int64_t>(),
                                    data.data_ptr<int64_t>() + data.numel());

  double nll = 0;
  int64_t count = 0;
  for (int64_t k = 0; k < 3; ++k) {
    std::vector<int64_t> window{bos};
    window.insert(window.end(), tokens.begin() + k * stride, tokens.begin() + (k + 1) * stride);
    const at::Tensor ids = at::tensor(window, at::TensorOptions().dtype(at::kLong)).unsqueeze(0);
    const at::Tensor logp = at::log_softmax(testing::logits_of(*model, ids).to(at::kDouble), -1);
    for (int64_t t = 0; t + 1 < seq_len; ++t, ++count)
      nll -= logp[0][t][window[static_cast<size_t>(t + 1)]].item<double>();
  }
  ASSERT_EQ(count, 21);
  const double mean = nll / static_cast<double>(count);

  PerplexityOptions options;
  options.seq_len = seq_len;
  options.bos_id = bos;
  options.batch_size = 2;  // a full batch and a partial one
  const PerplexityResult r = perplexity(*model, tokens, options);
  EXPECT_EQ(r.windows, 3);
  EXPECT_EQ(r.predictions, 21);
  EXPECT_NEAR(r.mean_nll, mean, 1e-5);
  EXPECT_NEAR(r.perplexity, std::exp(mean), 1e-5 * std::exp(mean));
  // Random weights are far from uniform guessing: the NLL is not a constant the code could
  // return without running the model.
  EXPECT_GT(std::abs(mean - std::log(48.0)), 0.05);

  // max_windows takes the first windows only; the batch size changes nothing.
  options.max_windows = 1;
  options.batch_size = 4;
  const PerplexityResult one = perplexity(*model, tokens, options);
  EXPECT_EQ(one.windows, 1);
  EXPECT_EQ(one.predictions, 7);
  EXPECT_NE(one.mean_nll, r.mean_nll);

  // Fewer tokens than one window is an error, not a perplexity of nothing.
  const std::vector<int64_t> short_data(tokens.begin(), tokens.begin() + stride - 1);
  try {
    perplexity(*model, short_data, options);
    FAIL() << "no error for too little data";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "seq_len");
  }
}

// ---- data files -------------------------------------------------------------------------------

TEST(LoadTokens, IdsFile) {
  TempDir tmp;
  const fs::path path = tmp / "data.ids";
  write_bytes(path, "1 2 3\n4\t5\n\n 6 \n");
  EXPECT_EQ(load_tokens(path.string(), nullptr, 10), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
}

TEST(LoadTokens, BadIdsNameTheFileAndLine) {
  TempDir tmp;
  const fs::path path = tmp / "data.ids";
  const std::vector<std::pair<std::string, int>> cases = {
      {"1 2\n3 4\n5 10\n", 3},  // out of range for a vocabulary of 10
      {"1 -2\n", 1},
      {"1 2\n\nthree\n", 3},
      {"7 8x\n", 1},
  };
  for (const auto& [text, line] : cases) {
    SCOPED_TRACE(text);
    write_bytes(path, text);
    try {
      load_tokens(path.string(), nullptr, 10);
      ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
      ASSERT_TRUE(e.where().known()) << e.what();
      EXPECT_EQ(*e.where().file, path.string());
      EXPECT_EQ(e.where().line, line);
      EXPECT_TRUE(contains(e.what(), path.string() + ":" + std::to_string(line))) << e.what();
    }
  }
  write_bytes(path, "\n  \n");
  EXPECT_THROW(load_tokens(path.string(), nullptr, 10), ConfigError);  // no tokens at all
}

TEST(LoadTokens, TextNeedsATokenizer) {
  TempDir tmp;
  write_bytes(tmp / "data.txt", "Once upon a time");
  try {
    load_tokens((tmp / "data.txt").string(), nullptr, 512);
    FAIL() << "text was read without a tokenizer";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), (tmp / "data.txt").string())) << e.what();
  }
}

TEST_F(Stories260K, CrlfTextTokenizesLikeLf) {
  TempDir tmp;
  const std::string lf = "Spot saw the car.\n\nKitty smiled.\nThe end.\n";
  std::string crlf;
  for (char c : lf)
    crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  write_bytes(tmp / "lf.txt", lf);
  write_bytes(tmp / "crlf.txt", crlf);
  const auto from_lf = load_tokens((tmp / "lf.txt").string(), &tokenizer(), 512);
  const auto from_crlf = load_tokens((tmp / "crlf.txt").string(), &tokenizer(), 512);
  EXPECT_EQ(from_crlf, from_lf);
  // Without the conversion the tokens would differ, so the comparison above means something.
  EXPECT_NE(tokenizer().encode(crlf), tokenizer().encode(lf));
  // The whole file is one encode() call, without BOS.
  EXPECT_EQ(from_lf, tokenizer().encode(lf));
}

TEST(TokenizerLoad, MissingModelFileNamesIt) {
  TempDir tmp;
  try {
    Tokenizer::load(tmp.path().string());
    FAIL() << "a tokenizer loaded from an empty folder";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.file(), (tmp / "tokenizer.model").string());
    EXPECT_TRUE(contains(e.what(), (tmp / "tokenizer.model").string())) << e.what();
  }
#if !defined(__SANITIZE_ADDRESS__)  // SentencePiece cannot be loaded under AddressSanitizer
  write_bytes(tmp / "tokenizer.model", "this is not a protobuf");
  try {
    Tokenizer::load(tmp.path().string());
    FAIL() << "garbage loaded as a SentencePiece model";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.file(), (tmp / "tokenizer.model").string());
  }
#endif
}

}  // namespace
}  // namespace qplug
