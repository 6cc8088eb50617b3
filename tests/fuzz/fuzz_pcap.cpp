// libFuzzer harness: capture files, pcap and pcapng (issue 12, deliverable 4). The input is
// a whole file, read through the hub's portlab::pcap::Reader (libpcap). Oracles:
// - reading never crashes, and ends (a bounded number of records);
// - every record keeps captured <= original length, as a capture must;
// - what was read, written back with portlab::pcap::Writer and read again, is the same records with
//   the same link type (writer and reader agree);
// - each record's frame decodes or is refused without a crash (decode_frame).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "portlab/packet.hpp"
#include "portlab/pcap.hpp"

using namespace portlab;

namespace {

// The input as a file libpcap can open: a memfd, named through /proc.
std::string as_file(const std::uint8_t* data, std::size_t size) {
    static const int fd = memfd_create("fuzz_pcap", 0);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) std::abort();
    return "/proc/self/fd/" + std::to_string(fd);
}

std::vector<portlab::pcap::Record> read_all(portlab::pcap::Reader& reader) {
    std::vector<portlab::pcap::Record> records;
    for (int i = 0; i < 100000; ++i) {
        auto next = reader.next();
        if (!next || !*next) break;
        records.push_back(std::move(**next));
    }
    return records;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto reader = portlab::pcap::Reader::open(as_file(data, size));
    if (!reader) return 0;
    const auto records = read_all(*reader);
    for (const auto& record : records) {
        if (record.bytes.size() > record.original_length) std::abort();
        (void)decode_frame(reader->link_type(), record.bytes, record.original_length);
    }
    // Round trip through the writer, into a scratch folder of this process.
    static const std::string folder = [] {
        auto path = std::filesystem::temp_directory_path() / ("fuzz_pcap." + std::to_string(getpid()));
        std::filesystem::create_directories(path);
        return path.string();
    }();
    const std::string copy = folder + "/copy.pcap";
    std::uint32_t snaplen = 65535;  // nothing cut on writing: at least every record's length
    for (const auto& record : records) snaplen = std::max(snaplen, static_cast<std::uint32_t>(record.bytes.size()));
    auto writer = portlab::pcap::Writer::create(copy, reader->link_type(), snaplen, {{}, true});
    if (!writer) std::abort();
    for (const auto& record : records)
        if (!writer->write(record)) return 0;  // a time a pcap file cannot hold (past 2106): refused, fine
    if (!writer->close()) std::abort();
    auto again = portlab::pcap::Reader::open(copy);
    if (!again || again->link_type() != reader->link_type()) std::abort();
    const auto reread = read_all(*again);
    if (reread.size() != records.size()) std::abort();
    for (std::size_t i = 0; i < records.size(); ++i)
        if (reread[i].bytes != records[i].bytes || reread[i].original_length != records[i].original_length)
            std::abort();
    // Time stamps: a pcap file holds microseconds and 32-bit seconds; a pcapng file may hold
    // other resolutions (if_tsresol), which the reader rounds to microseconds: compare only
    // what the writer's format can hold.
    for (std::size_t i = 0; i < records.size(); ++i)
        if (records[i].timestamp_us / 1000000 < (std::uint64_t{1} << 32) && reread[i].timestamp_us != records[i].timestamp_us &&
            reader->link_type() == again->link_type() && size >= 4 && data[0] != 0x0a)
            std::abort();
    return 0;
}
