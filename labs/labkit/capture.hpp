#pragma once
// Live capture on a network interface through libpcap: what tcpdump -i lo does, as a
// small object a lab can open, fill and read within a time limit.
//
//   auto capture = capture::LiveCapture::open({.interface = "lo", .filter = "tcp or udp"});
//   ... make some traffic ...
//   auto records = capture->read({.limit = 2s, .idle = 200ms});   // pcap::Record's
//   decode_frame(capture->link_type(), records->front().bytes, records->front().original_length);
//
// Capturing needs CAP_NET_RAW in the user namespace that owns the interface's network
// namespace (packet(7)): root on the host, or anyone inside a private user + network
// namespace of their own (netns.hpp), which is also where only the lab's packets are on `lo`.
//
// On Linux `lo` the link type is Ethernet (DLT_EN10MB) with zero MAC addresses, and each
// packet is seen once: libpcap drops the outgoing copy on the loopback device.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "portlab/packet.hpp"
#include "portlab/pcap.hpp"
#include "portlab/result.hpp"

struct pcap;  // libpcap's handle, declared so this header does not need <pcap/pcap.h>

namespace portlab::capture {

struct LiveOptions {
    std::string interface = "lo";
    std::string filter;  // a pcap-filter(7) expression ("tcp port 8080"); empty = every packet
    std::uint32_t snaplen = 262144;
    // Immediate mode (pcap_set_immediate_mode) hands each packet over as it arrives
    // instead of when the kernel's buffer block fills, so a short demo loses nothing to
    // buffering and needs no flush.
    bool immediate = true;
};

struct ReadLimits {
    std::chrono::milliseconds limit{2000};  // the whole read never takes longer
    std::chrono::milliseconds idle{0};      // > 0: stop after this long without a packet
    std::size_t max_packets = 10000;        // stop at this many
    // Called after each batch; true stops the read (e.g. "the last ACK has been seen").
    std::function<bool(const std::vector<pcap::Record>&)> enough;
};

// What the kernel counted for this capture (pcap_stats).
struct Stats {
    std::uint64_t received = 0;  // packets that passed the filter
    std::uint64_t dropped = 0;   // dropped because the buffer was full
};

class LiveCapture {
public:
    // Errors, one line each: "cannot capture on 'eth9': No such device exists",
    // "cannot capture on 'lo': You don't have permission to perform this capture on that
    // device (needs root or CAP_NET_RAW)", "bad capture filter 'tcp prt 80': ...",
    // or a link type portlab does not decode.
    [[nodiscard]] static Result<LiveCapture> open(const LiveOptions& options);

    [[nodiscard]] LinkType link_type() const noexcept { return link_type_; }
    [[nodiscard]] const std::string& interface() const noexcept { return interface_; }

    // Packets that have arrived since the last read, waiting within `limits`. Never blocks
    // longer than limits.limit.
    [[nodiscard]] Result<std::vector<pcap::Record>> read(const ReadLimits& limits);
    [[nodiscard]] Result<Stats> stats() const;

    LiveCapture(LiveCapture&&) noexcept = default;
    LiveCapture& operator=(LiveCapture&&) noexcept = default;
    LiveCapture(const LiveCapture&) = delete;
    LiveCapture& operator=(const LiveCapture&) = delete;
    ~LiveCapture() = default;

private:
    struct CloseHandle { void operator()(::pcap* handle) const noexcept; };

    LiveCapture(std::string interface, LinkType link_type, std::unique_ptr<::pcap, CloseHandle> handle);

    std::string interface_;
    LinkType link_type_;
    std::unique_ptr<::pcap, CloseHandle> handle_;
};

}  // namespace portlab::capture
