#include "labkit/capture.hpp"

#include <poll.h>
#include <pcap/pcap.h>

#include <algorithm>

namespace portlab::capture {
namespace {

using Clock = std::chrono::steady_clock;

std::string open_error(const std::string& interface, int status, ::pcap* handle) {
    std::string reason = status == PCAP_ERROR || status == PCAP_WARNING ? pcap_geterr(handle) : pcap_statustostr(status);
    if (reason.empty()) reason = pcap_statustostr(status);
    if (status == PCAP_ERROR_PERM_DENIED) reason += " (needs root or CAP_NET_RAW, e.g. inside a private user+network namespace)";
    return "cannot capture on '" + interface + "': " + reason;
}

struct Batch {
    std::vector<pcap::Record>* records;
    std::size_t max_packets;
};

void append_record(u_char* user, const pcap_pkthdr* header, const u_char* bytes) {
    auto* batch = reinterpret_cast<Batch*>(user);
    if (batch->records->size() >= batch->max_packets) return;
    pcap::Record record;
    record.timestamp_us = static_cast<std::uint64_t>(header->ts.tv_sec) * 1'000'000u + static_cast<std::uint64_t>(header->ts.tv_usec);
    record.bytes.assign(bytes, bytes + header->caplen);
    record.original_length = header->len;
    batch->records->push_back(std::move(record));
}

}  // namespace

void LiveCapture::CloseHandle::operator()(::pcap* handle) const noexcept { pcap_close(handle); }

LiveCapture::LiveCapture(std::string interface, LinkType link_type, std::unique_ptr<::pcap, CloseHandle> handle)
    : interface_(std::move(interface)), link_type_(link_type), handle_(std::move(handle)) {}

Result<LiveCapture> LiveCapture::open(const LiveOptions& options) {
    char error_text[PCAP_ERRBUF_SIZE] = {};
    std::unique_ptr<::pcap, CloseHandle> handle(pcap_create(options.interface.c_str(), error_text));
    if (!handle) return fail("cannot capture on '" + options.interface + "': " + error_text);
    pcap_set_snaplen(handle.get(), static_cast<int>(options.snaplen));
    pcap_set_immediate_mode(handle.get(), options.immediate ? 1 : 0);
    pcap_set_timeout(handle.get(), 50);  // only matters without immediate mode
    const int status = pcap_activate(handle.get());
    if (status < 0) return fail(open_error(options.interface, status, handle.get()));

    const auto link_type = pcap::from_dlt(pcap_datalink(handle.get()));
    if (!link_type) return fail("cannot decode captures from '" + options.interface + "': " + link_type.error().message);

    if (!options.filter.empty()) {
        bpf_program program{};
        if (pcap_compile(handle.get(), &program, options.filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
            return fail("bad capture filter '" + options.filter + "': " + pcap_geterr(handle.get()));
        const int set = pcap_setfilter(handle.get(), &program);
        pcap_freecode(&program);
        if (set != 0) return fail("cannot set capture filter '" + options.filter + "': " + pcap_geterr(handle.get()));
    }
    // Non-blocking: the read loop below waits with poll() and its own deadline.
    if (pcap_setnonblock(handle.get(), 1, error_text) != 0) return fail("cannot make the capture non-blocking: " + std::string(error_text));
    return LiveCapture(options.interface, *link_type, std::move(handle));
}

Result<std::vector<pcap::Record>> LiveCapture::read(const ReadLimits& limits) {
    std::vector<pcap::Record> records;
    Batch batch{&records, limits.max_packets};
    const auto start = Clock::now();
    const auto deadline = start + limits.limit;
    auto last_packet = start;
    const int fd = pcap_get_selectable_fd(handle_.get());
    while (records.size() < limits.max_packets) {
        const std::size_t before = records.size();
        const int count = pcap_dispatch(handle_.get(), -1, append_record, reinterpret_cast<u_char*>(&batch));
        if (count == PCAP_ERROR) return fail("capture on '" + interface_ + "' failed: " + pcap_geterr(handle_.get()));
        const auto now = Clock::now();
        if (records.size() > before) {
            last_packet = now;
            if (limits.enough && limits.enough(records)) break;
        }
        if (now >= deadline) break;
        if (limits.idle.count() > 0 && now - last_packet >= limits.idle) break;
        // Wait for the next packet, at most until the nearer of the deadline and the idle end.
        auto wake = deadline;
        if (limits.idle.count() > 0) wake = std::min(wake, last_packet + limits.idle);
        const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count() + 1;
        if (fd >= 0) {
            pollfd poll_fd{fd, POLLIN, 0};
            ::poll(&poll_fd, 1, static_cast<int>(std::clamp<long long>(wait_ms, 1, 100)));
        }
    }
    return records;
}

Result<Stats> LiveCapture::stats() const {
    pcap_stat counted{};
    if (pcap_stats(handle_.get(), &counted) != 0) return fail("no capture statistics: " + std::string(pcap_geterr(handle_.get())));
    return Stats{counted.ps_recv, counted.ps_drop};
}

}  // namespace portlab::capture
