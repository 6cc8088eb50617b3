#pragma once
// Capture files through libpcap: write what the simulator or a lab saw so Wireshark
// and tcpdump can open it, and read captures back (classic pcap, and pcapng files
// with one link type, since libpcap reads both).
//
// Five link types, the ones portlab's packets come in (LinkType in packet.hpp):
//   RAW        bare IPv4/IPv6 packets (the simulator's native form),
//   EN10MB     Ethernet II frames (what a Linux capture on `lo` records),
//   LINUX_SLL  Linux "cooked" capture v1 (tcpdump -i any with libpcap < 1.10),
//   LINUX_SLL2 Linux "cooked" capture v2 (tcpdump -i any with libpcap >= 1.10, Debian 12),
//   NULL       BSD loopback: a 4-byte address family in host byte order, then IP.
//
// Time stamps are microseconds since the Unix epoch; a file stores seconds as a
// 32-bit unsigned number, so times past 2106-02-07 cannot be written.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "portlab/packet.hpp"
#include "portlab/output_file.hpp"
#include "portlab/result.hpp"

// libpcap's handle types, declared here so this header does not pull in <pcap/pcap.h>.
struct pcap;
struct pcap_dumper;

namespace portlab::pcap {

struct Record {
    std::uint64_t timestamp_us = 0;  // microseconds since 1970-01-01T00:00:00Z
    Bytes bytes;                     // what was captured: at most the snap length
    std::uint32_t original_length = 0;  // length on the wire; >= bytes.size()

    // A record of a whole packet (nothing cut off by a snap length).
    [[nodiscard]] static Record whole(std::uint64_t timestamp_us, Bytes bytes);
};

// libpcap's DLT_* value for a link type (what pcap_open_dead() takes and
// pcap_datalink() returns). It differs from the LINKTYPE_* value a file stores
// for RAW: DLT_RAW is 12 on Linux, LINKTYPE_RAW is 101 (see pcap-linktype(7)).
[[nodiscard]] int to_dlt(LinkType link_type) noexcept;
// The reverse; an error names the link type (e.g. "IEEE802_11 (105)") for anything
// portlab does not decode.
[[nodiscard]] Result<LinkType> from_dlt(int dlt);

// Writes one capture file. Move-only; the file is flushed and closed on destruction.
class Writer {
public:
    // Writes `path` through an OutputFile (output_file.hpp: refused when `rules` forbid it,
    // put in place by close() only); "-" is standard output, as in libpcap. Packets longer
    // than `snaplen` are cut to it on writing, as a capture would, keeping their original length.
    [[nodiscard]] static Result<Writer> create(const std::string& path, LinkType link_type,
                                               std::uint32_t snaplen = 262144, const OutputRules& rules = {});

    [[nodiscard]] Result<void> write(const Record& record);
    [[nodiscard]] Result<void> flush();
    // Writes what is buffered, closes the file and puts it in place. A writer dropped without
    // close() leaves the file that was there before untouched.
    [[nodiscard]] Result<void> close();

    [[nodiscard]] LinkType link_type() const noexcept { return link_type_; }

    Writer(Writer&&) noexcept = default;
    Writer& operator=(Writer&&) noexcept = default;
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    ~Writer() = default;

private:
    struct CloseHandle { void operator()(::pcap* handle) const noexcept; };
    struct CloseDumper { void operator()(::pcap_dumper* dumper) const noexcept; };

    Writer(std::string path, LinkType link_type, std::uint32_t snaplen, std::unique_ptr<::pcap, CloseHandle> handle,
           std::unique_ptr<::pcap_dumper, CloseDumper> dumper, std::optional<OutputFile> output);

    std::string path_;
    std::optional<OutputFile> output_;  // none for "-" (standard output); declared first: removed last
    LinkType link_type_;
    std::uint32_t snaplen_;
    // Declared handle first so the dumper (which writes the last buffered bytes)
    // is closed before the handle it was opened from.
    std::unique_ptr<::pcap, CloseHandle> handle_;
    std::unique_ptr<::pcap_dumper, CloseDumper> dumper_;
};

// The largest capture file a reader accepts (records are read one at a time).
inline constexpr std::uint64_t max_capture_file_bytes = 64ull << 30;

// Reads one capture file, record by record. Move-only; closes on destruction.
class Reader {
public:
    // A missing file, a file that is not a capture, or a link type other than the
    // four above is an error; so is anything but a regular file of at most
    // max_capture_file_bytes (input_file.hpp: no device, no FIFO).
    [[nodiscard]] static Result<Reader> open(const std::string& path);

    [[nodiscard]] LinkType link_type() const noexcept { return link_type_; }

    // The next record, or std::nullopt at the end of the file. A truncated or
    // corrupt record is an error; libpcap cannot resynchronise after one, so every
    // call after the end or an error gives std::nullopt.
    [[nodiscard]] Result<std::optional<Record>> next();
    // After next() failed: whether the file ended inside a record (a capture cut
    // short, as a killed tcpdump leaves it) rather than holding a corrupt one. The
    // records before it are whole.
    [[nodiscard]] bool cut_short() const noexcept { return cut_short_; }
    // Bytes of the file read so far (libpcap reads ahead in stdio buffers).
    [[nodiscard]] std::uint64_t position() const;

    Reader(Reader&&) noexcept = default;
    Reader& operator=(Reader&&) noexcept = default;
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    ~Reader() = default;

private:
    struct CloseHandle { void operator()(::pcap* handle) const noexcept; };

    Reader(std::string path, LinkType link_type, std::unique_ptr<::pcap, CloseHandle> handle);

    std::string path_;
    LinkType link_type_;
    std::unique_ptr<::pcap, CloseHandle> handle_;
    bool at_end_ = false;
    bool cut_short_ = false;
};

struct Capture {
    LinkType link_type = LinkType::raw;
    std::vector<Record> records;
};

// The whole file at once; any bad record makes the whole read an error.
[[nodiscard]] Result<Capture> read_file(const std::string& path);

}  // namespace portlab::pcap
