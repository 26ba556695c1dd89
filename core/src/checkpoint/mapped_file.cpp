// MappedFile: a read-only, private memory map of a whole checkpoint file.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "qplug/core/safetensors.hpp"
#include "qplug/sdk/errors.hpp"

namespace qplug {

namespace {

// Closes a descriptor on every path out of the constructor; the mapping outlives it.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() { ::close(fd_); }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

std::string errno_text(int error) {
  return std::strerror(error);
}

uint64_t page_size() {
  static const uint64_t size = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw CheckpointError(path, "", "cannot open: " + errno_text(errno));
  FdCloser closer(fd);

  struct stat info {};
  if (::fstat(fd, &info) != 0) throw CheckpointError(path, "", "cannot open: " + errno_text(errno));
  // A directory opens fine with O_RDONLY and only fails later in mmap with a confusing ENODEV.
  if (!S_ISREG(info.st_mode)) throw CheckpointError(path, "", "cannot open: not a regular file");
  size_ = static_cast<uint64_t>(info.st_size);
  // mmap rejects a zero length; an empty file simply has no bytes to hand out.
  if (size_ == 0) return;

  void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (mapped == MAP_FAILED) throw CheckpointError(path, "", "cannot map: " + errno_text(errno));
  data_ = static_cast<const uint8_t*>(mapped);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void MappedFile::release(uint64_t begin, uint64_t end) const {
  if (data_ == nullptr) return;
  const uint64_t page = page_size();
  if (end > size_) end = size_;
  if (begin >= end) return;
  // Only pages wholly inside [begin, end) may go: a page shared with a neighbouring tensor would
  // just be faulted back in. The file's last page counts as whole when the range reaches the end
  // of the file, since the bytes past EOF hold no data.
  const uint64_t first = (begin + page - 1) / page * page;
  const uint64_t last = end == size_ ? (end + page - 1) / page * page : end / page * page;
  if (first >= last) return;
  // Advice only: if the kernel declines, the bytes simply stay resident.
  ::madvise(const_cast<uint8_t*>(data_) + first, last - first, MADV_DONTNEED);
}

}  // namespace qplug
