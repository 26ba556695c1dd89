// The safetensors reader, writer and MappedFile: round trips, the real checkpoints in ../shared,
// byte-exact writer output, one crafted file per validation rule, and random corruption.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/errors.hpp"
#include "test_support.hpp"

namespace qplug {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

// A safetensors file from a literal header (unpadded) and `data_bytes` bytes of data.
std::string raw_file(const std::string& header, size_t data_bytes) {
  std::string data(data_bytes, '\0');
  for (size_t i = 0; i < data_bytes; ++i)
    data[i] = static_cast<char>(i * 7 + 1);
  return le64(header.size()) + header + data;
}

std::vector<std::string> names_of(const SafetensorsFile& file) {
  std::vector<std::string> names;
  for (const auto& entry : file.entries())
    names.push_back(entry.name);
  return names;
}

// Runs `open` and returns the CheckpointError it must throw, after checking that it names the file
// and tensor and that what() says so too.
CheckpointError expect_error(const std::function<void()>& open, const std::string& file,
                             const std::string& tensor) {
  try {
    open();
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.file(), file) << e.what();
    EXPECT_EQ(e.tensor(), tensor) << e.what();
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    if (!tensor.empty()) {
      EXPECT_NE(std::string(e.what()).find("'" + tensor + "'"), std::string::npos) << e.what();
    }
    return e;
  }
  ADD_FAILURE() << "no CheckpointError for " << file;
  return CheckpointError(file, tensor, "<none thrown>");
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---- round trips -------------------------------------------------------------------------------

TEST(SafetensorsRoundTrip, WritesAndReadsEveryKindOfTensor) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  const std::vector<float> f32 = {1.0f, -2.5f, 3.25f, 0.0f, 7.0f, -0.125f};
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc000, 0x4040};
  const std::vector<int64_t> i64 = {-1, 1LL << 40};
  const uint8_t flag = 1;
  write_safetensors(path,
                    {{"z.last", DType::F32, {2, 3}, f32.data(), f32.size() * 4},
                     {"a.first", DType::BF16, {3}, bf16.data(), bf16.size() * 2},
                     {"m.scalar", DType::Bool, {}, &flag, 1},
                     {"m.empty", DType::I64, {0, 5}, nullptr, 0},
                     {"b.ints", DType::I64, {2}, i64.data(), 16}},
                    {{"format", "pt"}, {"quant", "x"}});

  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(names_of(*file),
            (std::vector<std::string>{"a.first", "b.ints", "m.empty", "m.scalar", "z.last"}));
  EXPECT_EQ(file->metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"quant", "x"}}));
  EXPECT_EQ(file->data_offset() % 8, 0u);
  EXPECT_EQ(file->data_offset() + 6 + 16 + 1 + 24, fs::file_size(path));

  const auto& z = file->at("z.last");
  EXPECT_EQ(z.dtype, DType::F32);
  EXPECT_EQ(z.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.nbytes(), 24u);
  EXPECT_EQ(std::memcmp(file->data(z), f32.data(), 24), 0);
  EXPECT_EQ(std::memcmp(file->data(file->at("a.first")), bf16.data(), 6), 0);
  EXPECT_EQ(std::memcmp(file->data(file->at("b.ints")), i64.data(), 16), 0);
  EXPECT_EQ(*file->data(file->at("m.scalar")), 1);
  EXPECT_EQ(file->at("m.scalar").numel(), 1);
  EXPECT_TRUE(file->at("m.scalar").shape.empty());
  EXPECT_EQ(file->at("m.empty").numel(), 0);
  EXPECT_EQ(file->at("m.empty").begin, file->at("m.empty").end);
  EXPECT_EQ(file->find("nope"), nullptr);
  expect_error([&] { file->at("nope"); }, path, "nope");
}

TEST(SafetensorsRoundTrip, HeaderOnlyGivesTheSameEntriesButNoData) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  const std::vector<int32_t> v = {1, 2, 3, 4};
  write_safetensors(path,
                    {{"w", DType::I32, {2, 2}, v.data(), 16}, {"b", DType::I32, {1}, v.data(), 4}});
  auto mapped = SafetensorsFile::open(path);
  auto header = SafetensorsFile::open_header_only(path);
  ASSERT_EQ(header->entries().size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(header->entries()[i].name, mapped->entries()[i].name);
    EXPECT_EQ(header->entries()[i].shape, mapped->entries()[i].shape);
    EXPECT_EQ(header->entries()[i].begin, mapped->entries()[i].begin);
    EXPECT_EQ(header->entries()[i].end, mapped->entries()[i].end);
  }
  EXPECT_EQ(header->metadata(), mapped->metadata());
  EXPECT_EQ(header->data_offset(), mapped->data_offset());
  EXPECT_EQ(mapped->mapping().size(), fs::file_size(path));
  expect_error([&] { header->data(header->at("w")); }, path, "");
  expect_error([&] { header->mapping(); }, path, "");
}

TEST(SafetensorsRoundTrip, EmptyTensorListAndEmptyMetadata) {
  TempDir dir;
  const std::string path = dir / "empty.safetensors";
  write_safetensors(path, {}, {});
  EXPECT_EQ(read_bytes(path), le64(8) + "{}      ");
  auto file = SafetensorsFile::open(path);
  EXPECT_TRUE(file->entries().empty());
  EXPECT_TRUE(file->metadata().empty());
}

// ---- byte-exact writer output ------------------------------------------------------------------

// Produced with Python's json + struct, laid out as the safetensors crate does:
//   json.dumps(header, separators=(',', ':'), ensure_ascii=False), spaces to a multiple of 8.
TEST(SafetensorsWriter, MatchesTheCrateLayoutByteForByte) {
  const std::string expected_header =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b.weight\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[8,20]},"
      "\"c\\\"q\xc3\xa9\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[20,21]},"
      "\"empty\":{\"dtype\":\"I32\",\"shape\":[0,4],\"data_offsets\":[21,21]}}     ";
  ASSERT_EQ(expected_header.size(), 272u);
  const std::string expected_data(
      "\x00\x00\xc0\x3f\x00\x00\x00\xc0"
      "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b"
      "\x07",
      21);

  TempDir dir;
  const std::string path = dir / "exact.safetensors";
  const float a[] = {1.5f, -2.0f};
  uint8_t b[12];
  for (int i = 0; i < 12; ++i)
    b[i] = static_cast<uint8_t>(i);
  const uint8_t c = 7;
  write_safetensors(path, {{"empty", DType::I32, {0, 4}, nullptr, 0},
                           {"c\"q\xc3\xa9", DType::U8, {}, &c, 1},
                           {"b.weight", DType::F16, {2, 3}, b, 12},
                           {"a", DType::F32, {2}, a, 8}});
  EXPECT_EQ(read_bytes(path), le64(272) + expected_header + expected_data);
}

// The byte arrays of the safetensors crate's own tests (safetensors/src/tensor.rs: test_empty,
// test_serialization, test_serialization_forced_alignement).
TEST(SafetensorsWriter, MatchesTheCratesOwnSerializationTests) {
  TempDir dir;
  const std::string path = dir / "crate.safetensors";
  write_safetensors(path, {}, {{"framework", "pt"}});
  EXPECT_EQ(read_bytes(path), le64(40) + "{\"__metadata__\":{\"framework\":\"pt\"}}     ");

  const float values[] = {0, 1, 2, 3, 4, 5};
  const std::string data(reinterpret_cast<const char*>(values), 24);
  write_safetensors(path, {{"attn.0", DType::F32, {1, 2, 3}, values, 24}}, {});
  EXPECT_EQ(read_bytes(path),
            le64(64) +
                "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}" +
                data);

  write_safetensors(path, {{"attn0", DType::F32, {1, 1, 2, 3}, values, 24}}, {});
  EXPECT_EQ(read_bytes(path),
            le64(72) +
                "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}" +
                std::string(7, ' ') + data);
}

TEST(SafetensorsWriter, OmitsMetadataWhenEmpty) {
  TempDir dir;
  const std::string path = dir / "nometa.safetensors";
  const float a[] = {1.0f};
  write_safetensors(path, {{"a", DType::F32, {1}, a, 4}}, {});
  const std::string header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
  const std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  EXPECT_EQ(read_bytes(path), le64(padded.size()) + padded + std::string("\x00\x00\x80\x3f", 4));
}

// The streamed writer asks for each tensor's bytes when it writes them, one at a time in the
// file's (name) order, and writes the file the plain writer writes; no bytes is an error naming
// the tensor, and leaves no file.
TEST(SafetensorsWriter, StreamedAsksForEachTensorInFileOrderAndWritesTheSameFile) {
  TempDir dir;
  const float a[] = {1, 2, 3}, b[] = {4, 5};
  const uint8_t c[] = {9};
  const std::vector<SafetensorsTensor> tensors{{"m.weight", DType::F32, {3}, a, 12},
                                               {"m.bias", DType::F32, {2}, b, 8},
                                               {"empty", DType::U8, {0}, nullptr, 0},
                                               {"k.codes", DType::U8, {1, 1}, c, 1}};
  write_safetensors(dir / "plain.safetensors", tensors);
  std::vector<std::string> asked;
  std::vector<SafetensorsTensor> without_data = tensors;
  for (auto& t : without_data)
    t.data = nullptr;
  std::vector<uint8_t> scratch;
  write_safetensors_streamed(dir / "streamed.safetensors", without_data,
                             [&](const SafetensorsTensor& t) -> const void* {
                               asked.push_back(t.name);
                               for (const auto& source : tensors)
                                 if (source.name == t.name) {
                                   // A fresh buffer each time: only the latest one must live.
                                   const auto* bytes = static_cast<const uint8_t*>(source.data);
                                   scratch.assign(bytes, bytes + source.nbytes);
                                 }
                               return scratch.data();
                             });
  EXPECT_EQ(asked, (std::vector<std::string>{"k.codes", "m.bias", "m.weight"}));
  EXPECT_EQ(read_bytes(dir / "streamed.safetensors"), read_bytes(dir / "plain.safetensors"));

  const std::string path = dir / "refused.safetensors";
  try {
    write_safetensors_streamed(path, without_data, [](const SafetensorsTensor& t) -> const void* {
      static const float value = 0.0f;
      return t.name == "m.bias" ? nullptr : &value;
    });
    FAIL() << "wrote a tensor without bytes";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.tensor(), "m.bias");
    EXPECT_EQ(e.file(), path);
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST(SafetensorsWriter, RejectsBadTensorsBeforeCreatingTheFile) {
  TempDir dir;
  const std::string path = dir / "bad.safetensors";
  const float v[6] = {};
  auto e = expect_error(
      [&] {
        write_safetensors(path, {{"w", DType::F32, {2, 3}, v, 20}});
      },
      path, "w");
  EXPECT_TRUE(contains(e.what(), "shape [2,3] x F32 is 24 bytes but 20 were given")) << e.what();
  e = expect_error(
      [&] {
        write_safetensors(path, {{"w", DType::F32, {1}, v, 4}, {"w", DType::F32, {1}, v, 4}});
      },
      path, "w");
  EXPECT_TRUE(contains(e.what(), "twice")) << e.what();
  expect_error([&] { write_safetensors(path, {{"n", DType::F32, {-1}, v, 0}}); }, path, "n");
  expect_error([&] { write_safetensors(path, {{"p", DType::F32, {1}, nullptr, 4}}); }, path, "p");
  expect_error(
      [&] {
        write_safetensors(path, {{"__metadata__", DType::U8, {1}, v, 1}});
      },
      path, "__metadata__");
  EXPECT_FALSE(fs::exists(path));
}

TEST(SafetensorsWriter, ReportsAFileThatCannotBeCreated) {
  TempDir dir;
  const std::string path = dir / "missing" / "x.safetensors";
  auto e = expect_error([&] { write_safetensors(path, {}); }, path, "");
  EXPECT_TRUE(contains(e.what(), "cannot create: No such file or directory")) << e.what();
}

// A full disk, simulated with a file size limit: write() fails with EFBIG part way through the
// tensor data, and the partial file must be gone.
TEST(SafetensorsWriter, FailedWriteRemovesThePartialFile) {
  TempDir dir;
  const std::string path = dir / "big.safetensors";
  std::vector<uint8_t> big(1 << 20, 0x5a);

  struct rlimit old {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit limited = old;
  limited.rlim_cur = 64 * 1024;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  std::string message;
  std::string tensor;
  try {
    write_safetensors(path, {{"big", DType::U8, {1 << 20}, big.data(), big.size()}});
  } catch (const CheckpointError& e) {
    message = e.what();
    tensor = e.tensor();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_EQ(tensor, "big");
  EXPECT_TRUE(contains(message, path)) << message;
  EXPECT_TRUE(contains(message, "cannot write tensor data: File too large")) << message;
  EXPECT_FALSE(fs::exists(path));
}

// ---- the real files in ../shared ---------------------------------------------------------------

// Copies every tensor of `file` into write_safetensors's input, pointing at the mapping.
std::vector<SafetensorsTensor> tensors_of(const SafetensorsFile& file) {
  std::vector<SafetensorsTensor> out;
  for (const auto& e : file.entries())
    out.push_back({e.name, e.dtype, e.shape, file.data(e), e.nbytes()});
  return out;
}

TEST(SafetensorsShared, ReadsStories260K) {
  const std::string path = testing::shared_dir() / "data/stories260K/model.safetensors";
  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->entries().size(), 47u);
  EXPECT_EQ(file->metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  const auto& embed = file->at("model.embed_tokens.weight");
  EXPECT_EQ(embed.dtype, DType::F32);
  EXPECT_EQ(embed.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(embed.begin, 0u);
  EXPECT_EQ(embed.nbytes(), 512u * 64 * 4);
  uint64_t previous_end = 0;
  for (const auto& e : file->entries()) {
    EXPECT_EQ(e.begin, previous_end) << e.name;
    previous_end = e.end;
  }
  EXPECT_EQ(file->data_offset() + previous_end, fs::file_size(path));
  const float* weights = reinterpret_cast<const float*>(file->data(embed));
  double sum_abs = 0;
  for (int i = 0; i < 512 * 64; ++i)
    sum_abs += std::abs(weights[i]);
  EXPECT_GT(sum_abs, 0.0);
  EXPECT_TRUE(std::isfinite(sum_abs));

  auto header = SafetensorsFile::open_header_only(path);
  EXPECT_EQ(names_of(*header), names_of(*file));
}

// stories260K was written by the safetensors crate (save_pretrained): rewriting it must reproduce
// the file byte for byte, header text and padding included.
TEST(SafetensorsShared, RewritingStories260KIsByteIdentical) {
  const fs::path path = testing::shared_dir() / "data/stories260K/model.safetensors";
  auto file = SafetensorsFile::open(path);
  TempDir dir;
  const std::string copy = dir / "model.safetensors";
  write_safetensors(copy, tensors_of(*file), file->metadata());
  EXPECT_TRUE(read_bytes(copy) == read_bytes(path));
}

// The vector files come from a Python writer that puts __metadata__ last, so their header text
// differs from the crate's; the tensors, their order and offsets, and the data area must not.
TEST(SafetensorsShared, RewritingTheVectorFilesKeepsLayoutAndData) {
  std::vector<fs::path> paths;
  for (const auto& entry : fs::directory_iterator(testing::shared_dir() / "spec/vectors")) {
    if (entry.path().extension() == ".safetensors") paths.push_back(entry.path());
  }
  ASSERT_GE(paths.size(), 4u);
  TempDir dir;
  for (const auto& path : paths) {
    SCOPED_TRACE(path.string());
    auto file = SafetensorsFile::open(path);
    EXPECT_FALSE(file->entries().empty());
    const std::string copy = dir / path.filename().string();
    write_safetensors(copy, tensors_of(*file), file->metadata());
    auto reread = SafetensorsFile::open(copy);
    ASSERT_EQ(reread->entries().size(), file->entries().size());
    for (size_t i = 0; i < file->entries().size(); ++i) {
      const auto& a = file->entries()[i];
      const auto& b = reread->entries()[i];
      EXPECT_EQ(a.name, b.name);
      EXPECT_EQ(a.dtype, b.dtype) << a.name;
      EXPECT_EQ(a.shape, b.shape) << a.name;
      EXPECT_EQ(a.begin, b.begin) << a.name;
      EXPECT_EQ(a.end, b.end) << a.name;
    }
    EXPECT_EQ(reread->metadata(), file->metadata());
    EXPECT_TRUE(read_bytes(copy).substr(reread->data_offset()) ==
                read_bytes(path).substr(file->data_offset()));
  }
}

TEST(SafetensorsShared, ReadsTheVectorScalarAndMixedDtypes) {
  auto file =
      SafetensorsFile::open(testing::shared_dir() / "spec/vectors/bnb_4bit_8bit.safetensors");
  const auto& format = file->at("int8.weight_format");
  EXPECT_EQ(format.dtype, DType::U8);
  EXPECT_TRUE(format.shape.empty());
  EXPECT_EQ(format.nbytes(), 1u);
  EXPECT_EQ(*file->data(format), 0);
  EXPECT_EQ(file->at("int8.input_fp16").dtype, DType::F16);
  EXPECT_EQ(file->at("int8.weight").dtype, DType::I8);
  EXPECT_EQ(file->at("int8.weight").shape, (std::vector<int64_t>{32, 128}));
}

// ---- one malformed file per validation rule ----------------------------------------------------

class Malformed : public ::testing::Test {
 protected:
  // Writes the file and expects both open() and open_header_only() to reject it with a message
  // naming the file and `tensor` and containing every string in `parts`.
  void expect_rejected(const std::string& bytes, const std::string& tensor,
                       const std::vector<std::string>& parts) {
    write_bytes(path_, bytes);
    for (bool header_only : {false, true}) {
      SCOPED_TRACE(header_only ? "header-only" : "mapped");
      auto e = expect_error(
          [&] {
            header_only ? SafetensorsFile::open_header_only(path_) : SafetensorsFile::open(path_);
          },
          path_, tensor);
      for (const auto& part : parts)
        EXPECT_TRUE(contains(e.what(), part)) << e.what();
    }
  }
  void expect_header_rejected(const std::string& header, size_t data_bytes,
                              const std::string& tensor, const std::vector<std::string>& parts) {
    expect_rejected(raw_file(header, data_bytes), tensor, parts);
  }

  TempDir dir_;
  std::string path_ = dir_ / "bad.safetensors";
};

const char* kAlpha = "\"alpha\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

TEST_F(Malformed, FileShorterThanEightBytes) {
  expect_rejected(std::string("\x05\x00\x00", 3), "", {"truncated: 3 bytes"});
  expect_rejected("", "", {"truncated: 0 bytes"});
}

TEST_F(Malformed, HeaderLengthOverTheLimit) {
  expect_rejected(le64(200'000'000) + "{}", "", {"200000000", "100000000"});
}

TEST_F(Malformed, HeaderLengthPastTheEndOfTheFile) {
  expect_rejected(le64(1000) + "{}      ", "", {"header length 1000", "16 bytes"});
  expect_rejected(le64(~uint64_t{0}), "", {"18446744073709551615"});
}

TEST_F(Malformed, HeaderNotJson) {
  expect_header_rejected("{\"alpha\": {", 0, "", {"header is not valid JSON"});
  expect_header_rejected(std::string("{}\0\0", 4), 0, "", {"header is not valid JSON"});
}

TEST_F(Malformed, HeaderNotAnObject) {
  expect_header_rejected("[1, 2]", 0, "", {"header is not a JSON object"});
}

TEST_F(Malformed, MetadataNotStringToString) {
  expect_header_rejected("{\"__metadata__\":{\"format\":1}}", 0, "", {"__metadata__", "format"});
  expect_header_rejected("{\"__metadata__\":[\"pt\"]}", 0, "", {"__metadata__", "list"});
}

TEST_F(Malformed, EntryNotAnObjectOrWithWrongKeys) {
  expect_header_rejected("{\"alpha\":[1]}", 0, "alpha", {"must be an object"});
  expect_header_rejected("{\"alpha\":{\"dtype\":\"F32\",\"shape\":[0]}}", 0, "alpha",
                         {"missing 'data_offsets'"});
  expect_header_rejected(
      "{\"alpha\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0],\"offset\":0}}", 0,
      "alpha", {"unexpected key 'offset'"});
}

TEST_F(Malformed, UnknownDtype) {
  expect_header_rejected(
      "{\"alpha\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, "alpha",
      {"unknown dtype \"F8_E4M3\"", "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL"});
  expect_header_rejected("{\"alpha\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                         "alpha", {"unknown dtype"});
}

TEST_F(Malformed, ShapeNotNonNegativeIntegers) {
  for (const char* shape : {"[-1]", "[2.0]", "[\"2\"]", "2", "[[2]]"}) {
    SCOPED_TRACE(shape);
    expect_header_rejected(std::string("{\"alpha\":{\"dtype\":\"U8\",\"shape\":") + shape +
                               ",\"data_offsets\":[0,2]}}",
                           2, "alpha", {"shape must be a list of non-negative integers"});
  }
}

TEST_F(Malformed, ElementCountOverflow) {
  expect_header_rejected(
      "{\"alpha\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
      "alpha", {"more elements than fit in 64 bits"});
  expect_header_rejected(
      "{\"alpha\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", 0,
      "alpha", {"more bytes than fit in 64 bits"});
}

TEST_F(Malformed, DataOffsetsNotTwoOrderedIntegers) {
  for (const char* offsets : {"[0]", "[0,8,9]", "[-1,7]", "[0,\"8\"]", "[0,8.0]", "{}"}) {
    SCOPED_TRACE(offsets);
    expect_header_rejected(std::string("{\"alpha\":{\"dtype\":\"F32\",\"shape\":[2],"
                                       "\"data_offsets\":") +
                               offsets + "}}",
                           8, "alpha", {"data_offsets must be two non-negative integers"});
  }
  expect_header_rejected("{\"alpha\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8,
                         "alpha", {"end before they begin"});
}

TEST_F(Malformed, ShapeAndByteLengthDisagree) {
  expect_header_rejected("{\"alpha\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}",
                         20, "alpha", {"shape [2,3] x F32 is 24 bytes but data_offsets span 20"});
}

TEST_F(Malformed, OffsetsBeyondTheDataArea) {
  expect_header_rejected(std::string("{") + kAlpha + "}", 6, "alpha",
                         {"data_offsets [0,8] lie beyond the data area of 6 bytes"});
}

TEST_F(Malformed, OverlappingTensors) {
  expect_header_rejected(std::string("{") + kAlpha +
                             ",\"beta\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[6,9]}}",
                         9, "beta", {"overlap tensor 'alpha' [0,8]"});
}

TEST_F(Malformed, GapBetweenTensors) {
  expect_header_rejected(std::string("{") + kAlpha +
                             ",\"beta\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[9,12]}}",
                         12, "beta", {"gap of 1 bytes after the end of tensor 'alpha' at 8"});
}

TEST_F(Malformed, FirstTensorNotAtZero) {
  expect_header_rejected("{\"beta\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[1,4]}}", 4,
                         "beta", {"gap of 1 bytes", "must begin at 0"});
}

TEST_F(Malformed, TrailingBytes) {
  expect_header_rejected(std::string("{") + kAlpha + "}", 12, "",
                         {"4 trailing bytes not covered by any tensor"});
}

// The header-only reader does not map the data, yet must still notice a data area that is shorter
// than the header claims (a truncated download).
TEST_F(Malformed, HeaderOnlyChecksOffsetsAgainstTheRealFileSize) {
  write_bytes(path_, raw_file(std::string("{") + kAlpha + "}", 5));
  auto e = expect_error([&] { SafetensorsFile::open_header_only(path_); }, path_, "alpha");
  EXPECT_TRUE(contains(e.what(), "beyond the data area of 5 bytes")) << e.what();
}

// Legal but unusual: header entries in any order, zero-element tensors sharing an offset.
TEST_F(Malformed, OutOfOrderHeaderAndZeroElementTensorsAreAccepted) {
  write_bytes(path_, raw_file("{\"beta\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]},"
                              "\"z0\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
                              "\"z1\":{\"dtype\":\"I64\",\"shape\":[4,0],\"data_offsets\":[8,8]}," +
                                  std::string(kAlpha) + "}",
                              11));
  auto file = SafetensorsFile::open(path_);
  ASSERT_EQ(file->entries().size(), 4u);
  EXPECT_EQ(file->entries().front().name, "alpha");
  EXPECT_EQ(file->entries().back().name, "beta");
  EXPECT_EQ(file->at("z1").nbytes(), 0u);
  EXPECT_EQ(file->data(file->at("beta"))[0], static_cast<uint8_t>(8 * 7 + 1));
}

// ---- MappedFile --------------------------------------------------------------------------------

TEST(MappedFileTest, EmptyFileHasNoMapping) {
  TempDir dir;
  write_bytes(dir / "empty", "");
  MappedFile map((dir / "empty").string());
  EXPECT_EQ(map.size(), 0u);
  EXPECT_EQ(map.data(), nullptr);
  map.release(0, 100);  // nothing to release, must not crash
}

TEST(MappedFileTest, ReportsMissingFilesAndDirectories) {
  TempDir dir;
  const std::string missing = dir / "missing.safetensors";
  auto e = expect_error([&] { MappedFile map(missing); }, missing, "");
  EXPECT_EQ(e.detail(), "cannot open: No such file or directory");
  e = expect_error([&] { SafetensorsFile::open_header_only(missing); }, missing, "");
  EXPECT_EQ(e.detail(), "cannot open: No such file or directory");
  const std::string folder = dir.path().string();
  e = expect_error([&] { MappedFile map(folder); }, folder, "");
  EXPECT_EQ(e.detail(), "cannot open: not a regular file");
}

// Resident size of the mapping that starts at `start`, from /proc/self/smaps (in kB).
long rss_kb(const void* start) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    const size_t dash = line.find('-');
    const bool header =
        dash != std::string::npos && dash > 0 && line.find_first_not_of("0123456789abcdef") == dash;
    if (header) {
      inside = std::stoull(line.substr(0, dash), nullptr, 16) == reinterpret_cast<uintptr_t>(start);
    } else if (inside && line.rfind("Rss:", 0) == 0) {
      return std::stol(line.substr(4));
    }
  }
  return -1;
}

TEST(MappedFileTest, ReleaseDropsOnlyWholePagesInsideTheRange) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const long page_kb = static_cast<long>(page / 1024);
  TempDir dir;
  const uint64_t size = 8 * page + 100;  // the last page is partial
  std::string bytes(size, '\0');
  for (uint64_t i = 0; i < size; ++i)
    bytes[i] = static_cast<char>(i % 251);
  write_bytes(dir / "pages", bytes);
  MappedFile map((dir / "pages").string());
  ASSERT_EQ(map.size(), size);

  auto touch_all = [&] {
    volatile uint64_t sum = 0;
    for (uint64_t i = 0; i < size; i += 64)
      sum = sum + map.data()[i];
  };
  touch_all();
  const long all = rss_kb(map.data());
  ASSERT_EQ(all, 9 * page_kb);

  // [page/2, 4*page + 10) holds pages 1, 2 and 3 whole; pages 0 and 4 are shared with neighbours.
  map.release(page / 2, 4 * page + 10);
  EXPECT_EQ(rss_kb(map.data()), all - 3 * page_kb);
  // Reaching the end of the file releases the partial last page as well: pages 6, 7 and 8.
  map.release(6 * page, size);
  EXPECT_EQ(rss_kb(map.data()), all - 6 * page_kb);
  // Ranges past the end or empty are harmless.
  map.release(size, size + 1000);
  map.release(5 * page, 5 * page);

  // Released pages read back unchanged from the file.
  EXPECT_EQ(std::memcmp(map.data(), bytes.data(), size), 0);
}

// ---- random corruption -------------------------------------------------------------------------

// Every corrupted file must either open with all tensors inside the file, or throw CheckpointError;
// nothing else (no crash, no other exception, no out-of-bounds read under ASan).
TEST(SafetensorsFuzz, RandomByteFlipsOnlyEverThrowCheckpointError) {
  TempDir dir;
  const std::string valid_path = dir / "valid.safetensors";
  const float w[6] = {1, 2, 3, 4, 5, 6};
  const uint16_t h[3] = {1, 2, 3};
  const int64_t n = 42;
  write_safetensors(valid_path, {{"layer.weight", DType::F32, {2, 3}, w, 24},
                                 {"layer.bias", DType::F16, {3}, h, 6},
                                 {"step", DType::I64, {}, &n, 8},
                                 {"none", DType::U8, {0}, nullptr, 0}});
  const std::string valid = read_bytes(valid_path);
  const size_t header_end = SafetensorsFile::open(valid_path)->data_offset();

  std::mt19937 rng(20240601);
  const std::string path = dir / "mutant.safetensors";
  int rejected = 0;
  int accepted = 0;
  for (int round = 0; round < 2000; ++round) {
    std::string bytes = valid;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) {
      // Mostly the prefix and header, where the validation lives; sometimes anywhere.
      const size_t limit = rng() % 5 == 0 ? bytes.size() : header_end;
      bytes[rng() % limit] = static_cast<char>(rng() % 256);
    }
    if (rng() % 10 == 0) bytes.resize(rng() % (bytes.size() + 1));
    write_bytes(path, bytes);

    bool mapped_ok = false;
    bool header_ok = false;
    try {
      auto file = SafetensorsFile::open(path);
      uint64_t sum = 0;
      for (const auto& e : file->entries()) {
        const uint8_t* data = file->data(e);
        for (uint64_t i = 0; i < e.nbytes(); ++i)
          sum += data[i];
      }
      (void)sum;
      mapped_ok = true;
    } catch (const CheckpointError&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "round " << round << ": unexpected " << e.what();
    }
    try {
      SafetensorsFile::open_header_only(path);
      header_ok = true;
    } catch (const CheckpointError&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "round " << round << ": unexpected " << e.what();
    }
    // Both readers apply the same rules to the same bytes.
    EXPECT_EQ(mapped_ok, header_ok) << "round " << round;
    (mapped_ok ? accepted : rejected)++;
  }
  // Both outcomes must occur, or the mutations are not exercising the validation at all.
  EXPECT_GT(rejected, 1000);
  EXPECT_GT(accepted, 50);
}

}  // namespace
}  // namespace qplug
