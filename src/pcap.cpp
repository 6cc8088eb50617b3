// Capture files through libpcap (pcap_open_dead + pcap_dump to write,
// pcap_open_offline to read). libpcap owns the file format; this file only
// translates between its C interface and portlab's values and errors.
#include "portlab/pcap.hpp"

#include <pcap/pcap.h>

#include "portlab/input_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

namespace portlab::pcap {
namespace {

constexpr std::uint64_t microseconds_per_second = 1'000'000;

// libpcap's messages are one line already; this only guards against a stray
// trailing newline so every error stays one line.
std::string one_line(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
}

// "IEEE802_11 (105)": libpcap's own name of a DLT, for error messages.
std::string describe_dlt(int dlt) {
    const char* name = pcap_datalink_val_to_name(dlt);
    return std::string(name != nullptr ? name : "unknown") + " (" + std::to_string(dlt) + ")";
}

}  // namespace

Record Record::whole(std::uint64_t timestamp_us, Bytes bytes) {
    const auto length = static_cast<std::uint32_t>(bytes.size());
    return Record{timestamp_us, std::move(bytes), length};
}

int to_dlt(LinkType link_type) noexcept {
    switch (link_type) {
        case LinkType::null: return DLT_NULL;
        case LinkType::en10mb: return DLT_EN10MB;
        // Not 101: DLT_RAW is 12 on Linux (14 on OpenBSD); libpcap turns it into
        // LINKTYPE_RAW (101) in the file header (pcap-linktype(7)).
        case LinkType::raw: return DLT_RAW;
        case LinkType::linux_sll: return DLT_LINUX_SLL;
        case LinkType::linux_sll2: return DLT_LINUX_SLL2;
    }
    return DLT_RAW;
}

Result<LinkType> from_dlt(int dlt) {
    switch (dlt) {
        case DLT_NULL: return LinkType::null;
        case DLT_EN10MB: return LinkType::en10mb;
        case DLT_RAW: return LinkType::raw;
        case DLT_LINUX_SLL: return LinkType::linux_sll;
        case DLT_LINUX_SLL2: return LinkType::linux_sll2;
        default:
            return fail("link type " + describe_dlt(dlt) +
                        " is not supported (portlab reads RAW, EN10MB, LINUX_SLL, LINUX_SLL2 and NULL)");
    }
}

// ---------------------------------------------------------------- Writer

void Writer::CloseHandle::operator()(::pcap* handle) const noexcept { pcap_close(handle); }
void Writer::CloseDumper::operator()(::pcap_dumper* dumper) const noexcept { pcap_dump_close(dumper); }

Writer::Writer(std::string path, LinkType link_type, std::uint32_t snaplen, std::unique_ptr<::pcap, CloseHandle> handle,
               std::unique_ptr<::pcap_dumper, CloseDumper> dumper, std::optional<OutputFile> output)
    : path_(std::move(path)), output_(std::move(output)), link_type_(link_type), snaplen_(snaplen),
      handle_(std::move(handle)), dumper_(std::move(dumper)) {}

Result<Writer> Writer::create(const std::string& path, LinkType link_type, std::uint32_t snaplen,
                              const OutputRules& rules) {
    if (snaplen == 0 || snaplen > static_cast<std::uint32_t>(std::numeric_limits<int>::max())) {
        return fail("pcap: snap length " + std::to_string(snaplen) + " for '" + path + "' must be 1.." +
                    std::to_string(std::numeric_limits<int>::max()));
    }
    // A "dead" handle: no interface, only a link type and snap length for the
    // file header. Microsecond precision writes the classic 0xa1b2c3d4 magic.
    std::unique_ptr<::pcap, CloseHandle> handle(
        pcap_open_dead_with_tstamp_precision(to_dlt(link_type), static_cast<int>(snaplen),
                                             PCAP_TSTAMP_PRECISION_MICRO));
    if (!handle) return fail("pcap: cannot create a capture handle for '" + path + "'");

    std::optional<OutputFile> output;
    if (path != "-") {
        auto created = OutputFile::create(path, rules);
        if (!created) return fail("pcap: " + created.error().message);
        output = std::move(*created);
    }
    std::unique_ptr<::pcap_dumper, CloseDumper> dumper(
        pcap_dump_open(handle.get(), output ? output->temp_path().c_str() : path.c_str()));
    if (!dumper) {
        return fail("pcap: cannot create '" + path + "': " + one_line(pcap_geterr(handle.get())));
    }
    return Writer(path, link_type, snaplen, std::move(handle), std::move(dumper), std::move(output));
}

Result<void> Writer::write(const Record& record) {
    if (!dumper_) return fail("pcap: writer for '" + path_ + "' was moved from");
    if (record.bytes.size() > record.original_length) {
        return fail("pcap: record has " + std::to_string(record.bytes.size()) +
                    " captured bytes but an original length of only " + std::to_string(record.original_length));
    }
    const std::uint64_t seconds = record.timestamp_us / microseconds_per_second;
    if (seconds > std::numeric_limits<std::uint32_t>::max()) {
        return fail("pcap: time stamp " + std::to_string(record.timestamp_us) +
                    " us is past 2106, the last second a pcap file can hold");
    }

    // A capture keeps at most snaplen bytes of each packet but remembers how
    // long it was (the pcap record header's caplen vs len).
    pcap_pkthdr header{};
    header.ts.tv_sec = static_cast<decltype(header.ts.tv_sec)>(seconds);
    header.ts.tv_usec = static_cast<decltype(header.ts.tv_usec)>(record.timestamp_us % microseconds_per_second);
    header.caplen = static_cast<bpf_u_int32>(std::min<std::size_t>(record.bytes.size(), snaplen_));
    header.len = record.original_length;

    pcap_dump(reinterpret_cast<u_char*>(dumper_.get()), &header, record.bytes.data());
    // pcap_dump() returns nothing; a failed fwrite shows on the stream.
    if (std::ferror(pcap_dump_file(dumper_.get())) != 0) {
        return fail("pcap: writing a record to '" + path_ + "' failed");
    }
    return {};
}

Result<void> Writer::flush() {
    if (!dumper_) return fail("pcap: writer for '" + path_ + "' was moved from");
    if (pcap_dump_flush(dumper_.get()) != 0) return fail("pcap: flushing '" + path_ + "' failed");
    return {};
}

Result<void> Writer::close() {
    if (auto flushed = flush(); !flushed) return flushed;
    // pcap_dump_close() fcloses without a word; the flush above met any write error.
    dumper_.reset();
    if (!output_) return {};
    auto committed = output_->commit();
    if (!committed) return fail("pcap: " + committed.error().message);
    return {};
}

// ---------------------------------------------------------------- Reader

void Reader::CloseHandle::operator()(::pcap* handle) const noexcept { pcap_close(handle); }

Reader::Reader(std::string path, LinkType link_type, std::unique_ptr<::pcap, CloseHandle> handle)
    : path_(std::move(path)), link_type_(link_type), handle_(std::move(handle)) {}

Result<Reader> Reader::open(const std::string& path) {
    auto file = open_input_file(path, max_capture_file_bytes);
    if (!file) return fail("pcap: " + file.error().message);
    std::FILE* stream = file->release_as_stream();
    if (stream == nullptr) return fail("pcap: cannot read '" + path + "': " + std::strerror(errno));
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    // Asking for microseconds makes libpcap scale nanosecond files down for us. The
    // handle owns the stream from here (pcap_close closes it), except when it fails.
    std::unique_ptr<::pcap, CloseHandle> handle(
        pcap_fopen_offline_with_tstamp_precision(stream, PCAP_TSTAMP_PRECISION_MICRO, errbuf));
    if (!handle) std::fclose(stream);
    if (!handle) return fail("pcap: cannot read '" + path + "': " + one_line(errbuf));

    // pcap_datalink() answers with the DLT value, not the file's LINKTYPE value.
    auto link_type = from_dlt(pcap_datalink(handle.get()));
    if (!link_type) return fail("pcap: '" + path + "': " + link_type.error().message);
    return Reader(path, *link_type, std::move(handle));
}

Result<std::optional<Record>> Reader::next() {
    if (at_end_) return std::optional<Record>{};
    if (!handle_) return fail("pcap: reader for '" + path_ + "' was moved from");

    pcap_pkthdr* header = nullptr;
    const u_char* data = nullptr;
    switch (pcap_next_ex(handle_.get(), &header, &data)) {
        case 1: {
            Record record;
            record.timestamp_us = static_cast<std::uint64_t>(header->ts.tv_sec) * microseconds_per_second +
                                  static_cast<std::uint64_t>(header->ts.tv_usec);
            record.bytes.assign(data, data + header->caplen);
            // A corrupt header may claim len < caplen; what was captured is the floor.
            record.original_length = std::max<std::uint32_t>(header->len, header->caplen);
            return std::optional<Record>{std::move(record)};
        }
        case PCAP_ERROR_BREAK:  // -2: no more records in a savefile
            at_end_ = true;
            return std::optional<Record>{};
        default:
            at_end_ = true;  // libpcap cannot resynchronise after a bad record
            // libpcap freads a record's header, then its bytes: a short read at the
            // end of the file is a record cut off (sf-pcap.c pcap_next_packet).
            cut_short_ = std::feof(pcap_file(handle_.get())) != 0;
            return fail("pcap: '" + path_ + "': " + one_line(pcap_geterr(handle_.get())));
    }
}

std::uint64_t Reader::position() const {
    if (!handle_) return 0;
    const long at = std::ftell(pcap_file(handle_.get()));
    return at < 0 ? 0 : static_cast<std::uint64_t>(at);
}

Result<Capture> read_file(const std::string& path) {
    auto reader = Reader::open(path);
    if (!reader) return reader.error();
    Capture capture{reader->link_type(), {}};
    while (true) {
        auto record = reader->next();
        if (!record) return record.error();
        if (!record->has_value()) return capture;
        capture.records.push_back(std::move(**record));
    }
}

}  // namespace portlab::pcap
