// Sharded checkpoints: the split and size parsing of transformers / huggingface_hub, the index file
// byte for byte, and CheckpointFiles over single-file, sharded and broken folders.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/errors.hpp"
#include "test_support.hpp"

namespace qplug {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using Shards = std::vector<std::pair<std::string, std::vector<std::string>>>;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

CheckpointError expect_error(const std::function<void()>& open, const std::string& file,
                             const std::string& tensor) {
  try {
    open();
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.file(), file) << e.what();
    EXPECT_EQ(e.tensor(), tensor) << e.what();
    return e;
  }
  ADD_FAILURE() << "no CheckpointError for " << file;
  return CheckpointError(file, tensor, "<none thrown>");
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---- parse_size --------------------------------------------------------------------------------

TEST(ParseSize, UnitsAsConvertFileSizeToInt) {
  EXPECT_EQ(parse_size("5GB"), 5'000'000'000u);
  EXPECT_EQ(parse_size("5GiB"), 5ull << 30);
  EXPECT_EQ(parse_size("500MB"), 500'000'000u);
  EXPECT_EQ(parse_size("2MiB"), 2u << 20);
  EXPECT_EQ(parse_size("3KB"), 3000u);
  EXPECT_EQ(parse_size("7KiB"), 7u * 1024);
  EXPECT_EQ(parse_size("1000000"), 1'000'000u);
  EXPECT_EQ(parse_size("0"), 0u);
  // Units compare case-insensitively (upstream tests size.upper()).
  EXPECT_EQ(parse_size("5gib"), 5ull << 30);
  EXPECT_EQ(parse_size("5mB"), 5'000'000u);
  // Python's int() ignores surrounding whitespace.
  EXPECT_EQ(parse_size("5 GB"), 5'000'000'000u);
}

TEST(ParseSize, TrailingLowerCaseBMeansBits) {
  EXPECT_EQ(parse_size("5Gb"), 625'000'000u);
  EXPECT_EQ(parse_size("5gb"), 625'000'000u);  // upstream: size.endswith("b")
  EXPECT_EQ(parse_size("12Mb"), 1'500'000u);
  EXPECT_EQ(parse_size("1Kb"), 125u);
  EXPECT_EQ(parse_size("1kb"), 125u);
  // Binary units have no bit form: a lower-case b there still means bytes.
  EXPECT_EQ(parse_size("1Gib"), 1ull << 30);
}

TEST(ParseSize, RejectsEverythingElse) {
  for (const char* text : {"", "GB", " GB", "5TB", "5B", "-5GB", "+5GB", "5.5GB", "5_000MB", "abc",
                           "5 G", "0x10", "99999999999999999999", "18446744074GB", "5GB "}) {
    SCOPED_TRACE(text);
    try {
      parse_size(text);
      ADD_FAILURE() << "accepted";
    } catch (const ConfigError& e) {
      EXPECT_TRUE(contains(e.what(), std::string("'") + text + "'")) << e.what();
      EXPECT_TRUE(contains(e.what(), "5GB")) << e.what();
    }
  }
}

// ---- plan_shards -------------------------------------------------------------------------------

TEST(PlanShards, EverythingFitsInOneFile) {
  const auto plan = plan_shards({{"a", 4}, {"b", 3}, {"c", 3}}, 10);
  EXPECT_EQ(plan.shards, (Shards{{"model.safetensors", {"a", "b", "c"}}}));
}

// The example of split_state_dict_into_shards_factory's docstring: limit 10, sizes
// [6, 6, 2, 6, 2, 2] -> [6], [6+2], [6+2+2], greedy in the given order.
TEST(PlanShards, GreedyInOrderAsUpstreamDocuments) {
  const auto plan =
      plan_shards({{"t1", 6}, {"t2", 6}, {"t3", 2}, {"t4", 6}, {"t5", 2}, {"t6", 2}}, 10);
  EXPECT_EQ(plan.shards, (Shards{{"model-00001-of-00003.safetensors", {"t1"}},
                                 {"model-00002-of-00003.safetensors", {"t2", "t3"}},
                                 {"model-00003-of-00003.safetensors", {"t4", "t5", "t6"}}}));
}

TEST(PlanShards, AShardMayBeFilledExactlyToTheLimit) {
  EXPECT_EQ(plan_shards({{"a", 5}, {"b", 5}}, 10).shards.size(), 1u);
  EXPECT_EQ(plan_shards({{"a", 5}, {"b", 6}}, 10).shards.size(), 2u);
}

// Upstream appends an oversized tensor to the shard list at once, without closing the shard being
// filled, so it comes before smaller tensors that preceded it.
TEST(PlanShards, OversizedTensorGetsItsOwnShardAtOnce) {
  const auto plan = plan_shards({{"a", 2}, {"huge", 20}, {"c", 3}, {"d", 9}}, 10);
  EXPECT_EQ(plan.shards, (Shards{{"model-00001-of-00003.safetensors", {"huge"}},
                                 {"model-00002-of-00003.safetensors", {"a", "c"}},
                                 {"model-00003-of-00003.safetensors", {"d"}}}));
}

TEST(PlanShards, ZeroByteTensorsAndEmptyInput) {
  EXPECT_EQ(plan_shards({{"a", 10}, {"z", 0}, {"b", 1}}, 10).shards,
            (Shards{{"model-00001-of-00002.safetensors", {"a", "z"}},
                    {"model-00002-of-00002.safetensors", {"b"}}}));
  EXPECT_EQ(plan_shards({}, 10).shards, (Shards{{"model.safetensors", {}}}));
}

// ---- write_shard_index -------------------------------------------------------------------------

// Expected text from Python: json.dumps(index, indent=2, sort_keys=True) + "\n", as save_pretrained
// writes it (ensure_ascii on, so "é" is \u00e9).
TEST(WriteShardIndex, MatchesSavePretrainedByteForByte) {
  TempDir dir;
  const std::string path = dir / "model.safetensors.index.json";
  write_shard_index(path, 1234,
                    {{"z.w", "model-00002-of-00002.safetensors"},
                     {"a.w", "model-00001-of-00002.safetensors"},
                     {"m\xc3\xa9", "model-00001-of-00002.safetensors"}});
  EXPECT_EQ(read_text(path),
            "{\n  \"metadata\": {\n    \"total_size\": 1234\n  },\n  \"weight_map\": {\n"
            "    \"a.w\": \"model-00001-of-00002.safetensors\",\n"
            "    \"m\\u00e9\": \"model-00001-of-00002.safetensors\",\n"
            "    \"z.w\": \"model-00002-of-00002.safetensors\"\n  }\n}\n");
}

TEST(WriteShardIndex, RejectsDuplicatesAndUnwritablePaths) {
  TempDir dir;
  const std::string path = dir / "index.json";
  expect_error([&] { write_shard_index(path, 1, {{"a", "x"}, {"a", "y"}}); }, path, "a");
  const std::string nowhere = dir / "missing" / "index.json";
  auto e = expect_error([&] { write_shard_index(nowhere, 1, {}); }, nowhere, "");
  EXPECT_TRUE(contains(e.what(), "cannot create")) << e.what();
}

// ---- CheckpointFiles ---------------------------------------------------------------------------

// Four float tensors split at 16 bytes into two shards: [a (8), b (8)] and [c (12), d (4)].
class ShardedFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 4; ++i)
      values_.push_back(static_cast<float>(i) + 0.5f);
    tensors_ = {{"a", {2}}, {"b", {2}}, {"c", {3}}, {"d", {1}}};
    std::vector<std::pair<std::string, uint64_t>> sizes;
    for (const auto& [name, n] : tensors_)
      sizes.emplace_back(name, n[0] * 4);
    plan_ = plan_shards(sizes, 16);
    ASSERT_EQ(plan_.shards.size(), 2u);
    std::vector<std::pair<std::string, std::string>> weight_map;
    for (const auto& [file, names] : plan_.shards) {
      std::vector<SafetensorsTensor> shard;
      for (const auto& name : names) {
        const int64_t n = shape_of(name)[0];
        shard.push_back({name, DType::F32, {n}, values_.data(), static_cast<uint64_t>(n) * 4});
        weight_map.emplace_back(name, file);
      }
      write_safetensors(dir_ / file, shard);
    }
    write_shard_index(index(), 32, weight_map);
  }

  std::vector<int64_t> shape_of(const std::string& name) const {
    for (const auto& [n, shape] : tensors_)
      if (n == name) return shape;
    return {};
  }
  std::string folder() const { return dir_.path().string(); }
  std::string index() const { return dir_ / "model.safetensors.index.json"; }
  std::string shard(int i) const { return dir_ / plan_.shards[i].first; }
  void write_index(const std::string& weight_map_json) {
    write_text(index(),
               "{\"metadata\": {\"total_size\": 32}, \"weight_map\": {" + weight_map_json + "}}");
  }

  TempDir dir_;
  std::vector<float> values_;
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors_;
  ShardPlan plan_;
};

TEST_F(ShardedFolder, OpensEveryShardTheIndexLists) {
  for (bool header_only : {false, true}) {
    SCOPED_TRACE(header_only);
    auto files = CheckpointFiles::open(folder(), header_only);
    EXPECT_EQ(files.folder(), folder());
    ASSERT_EQ(files.files().size(), 2u);
    EXPECT_EQ(files.files()[0]->path(), shard(0));
    EXPECT_EQ(files.tensor_names(), (std::vector<std::string>{"a", "b", "c", "d"}));
    EXPECT_EQ(files.total_bytes(), 32u);
    ASSERT_NE(files.file_of("c"), nullptr);
    EXPECT_EQ(files.file_of("c")->path(), (dir_ / "model-00002-of-00002.safetensors").string());
    EXPECT_EQ(files.file_of("a")->path(), (dir_ / "model-00001-of-00002.safetensors").string());
    EXPECT_EQ(files.file_of("nope"), nullptr);
    if (!header_only) {
      const SafetensorsFile* c = files.file_of("c");
      EXPECT_EQ(std::memcmp(c->data(c->at("c")), values_.data(), 12), 0);
    }
  }
}

TEST_F(ShardedFolder, MissingShard) {
  fs::remove(shard(1));
  auto e = expect_error([&] { CheckpointFiles::open(folder(), true); }, shard(1), "");
  EXPECT_TRUE(contains(e.what(), "shard listed in " + index() + " is missing")) << e.what();
}

TEST_F(ShardedFolder, TensorListedButAbsent) {
  const std::string one = plan_.shards[0].first;
  const std::string two = plan_.shards[1].first;
  write_index("\"a\": \"" + one + "\", \"b\": \"" + one + "\", \"ghost\": \"" + one +
              "\", \"c\": \"" + two + "\", \"d\": \"" + two + "\"");
  auto e = expect_error([&] { CheckpointFiles::open(folder(), false); }, shard(0), "ghost");
  EXPECT_TRUE(contains(e.what(), "but not in the file")) << e.what();
}

TEST_F(ShardedFolder, TensorPresentButNotListed) {
  const std::string one = plan_.shards[0].first;
  const std::string two = plan_.shards[1].first;
  write_index("\"a\": \"" + one + "\", \"c\": \"" + two + "\", \"d\": \"" + two + "\"");
  auto e = expect_error([&] { CheckpointFiles::open(folder(), true); }, shard(0), "b");
  EXPECT_TRUE(contains(e.what(), "not listed for this shard")) << e.what();
}

TEST_F(ShardedFolder, IndexThatIsNotJsonOrNamesPathsOutsideTheFolder) {
  write_text(index(), "{\"weight_map\": ");
  auto e = expect_error([&] { CheckpointFiles::open(folder(), true); }, index(), "");
  EXPECT_TRUE(contains(e.what(), "not valid JSON")) << e.what();
  write_text(index(), "{\"metadata\": {}}");
  e = expect_error([&] { CheckpointFiles::open(folder(), true); }, index(), "");
  EXPECT_TRUE(contains(e.what(), "weight_map")) << e.what();
  write_index("\"a\": \"../model.safetensors\"");
  expect_error([&] { CheckpointFiles::open(folder(), true); }, index(), "a");
  write_index("\"a\": 3");
  expect_error([&] { CheckpointFiles::open(folder(), true); }, index(), "a");
}

// transformers' from_pretrained takes model.safetensors ahead of the index when both exist.
TEST_F(ShardedFolder, SingleFileWinsOverTheIndexAsInTransformers) {
  const float x = 1.0f;
  write_safetensors(dir_ / "model.safetensors", {{"x", DType::F32, {1}, &x, 4}});
  auto files = CheckpointFiles::open(folder(), true);
  ASSERT_EQ(files.files().size(), 1u);
  EXPECT_EQ(files.tensor_names(), (std::vector<std::string>{"x"}));
}

TEST(CheckpointFilesTest, FolderWithoutWeights) {
  TempDir dir;
  const std::string folder = dir.path().string();
  auto e = expect_error([&] { CheckpointFiles::open(folder, true); }, folder, "");
  EXPECT_EQ(e.detail(), "no model.safetensors or model.safetensors.index.json in " + folder);
}

TEST(CheckpointFilesTest, OpensStories260K) {
  const fs::path folder = testing::shared_dir() / "data/stories260K";
  auto files = CheckpointFiles::open(folder.string(), false);
  ASSERT_EQ(files.files().size(), 1u);
  EXPECT_EQ(files.tensor_names().size(), 47u);
  EXPECT_EQ(files.tensor_names().front(), "model.embed_tokens.weight");
  const auto& file = *files.files()[0];
  EXPECT_EQ(files.total_bytes(), fs::file_size(folder / "model.safetensors") - file.data_offset());
  EXPECT_EQ(files.file_of("model.norm.weight"), &file);
}

// Re-sharding a real checkpoint with plan_shards + write_safetensors + write_shard_index gives a
// folder CheckpointFiles reads back with every tensor's bytes intact.
TEST(CheckpointFilesTest, ReshardedStories260KReadsBackIdentically) {
  auto original =
      SafetensorsFile::open(testing::shared_dir() / "data/stories260K/model.safetensors");
  std::vector<std::pair<std::string, uint64_t>> sizes;
  uint64_t total = 0;
  for (const auto& e : original->entries()) {
    sizes.emplace_back(e.name, e.nbytes());
    total += e.nbytes();
  }
  const ShardPlan plan = plan_shards(sizes, parse_size("300KB"));
  ASSERT_GT(plan.shards.size(), 2u);

  TempDir dir;
  std::vector<std::pair<std::string, std::string>> weight_map;
  for (const auto& [file, names] : plan.shards) {
    std::vector<SafetensorsTensor> tensors;
    for (const auto& name : names) {
      const auto& e = original->at(name);
      tensors.push_back({name, e.dtype, e.shape, original->data(e), e.nbytes()});
      weight_map.emplace_back(name, file);
    }
    write_safetensors(dir / file, tensors);
    EXPECT_LE(fs::file_size(dir / file), 300'000u + 4096) << file;
  }
  write_shard_index(dir / "model.safetensors.index.json", total, weight_map);

  auto files = CheckpointFiles::open(dir.path().string(), false);
  EXPECT_EQ(files.files().size(), plan.shards.size());
  EXPECT_EQ(files.total_bytes(), total);
  ASSERT_EQ(files.tensor_names().size(), 47u);
  for (const auto& name : files.tensor_names()) {
    const SafetensorsFile* file = files.file_of(name);
    const auto& copy = file->at(name);
    const auto& orig = original->at(name);
    EXPECT_EQ(copy.shape, orig.shape) << name;
    EXPECT_EQ(std::memcmp(file->data(copy), original->data(orig), orig.nbytes()), 0) << name;
  }
}

}  // namespace
}  // namespace qplug
