#pragma once
// The kernel's protocol counters from /proc/net/snmp (one set per network namespace;
// proc(5)). net/ipv4/proc.c (snmp_seq_show) writes each protocol as two lines, the
// counters' names and then their values, both starting with the protocol's name:
//   Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors ...
//   Udp: 1804 17 0 1824 0 0 0 ...
// Values are decimal and may be negative (Tcp MaxConn is -1: no fixed limit).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portlab/result.hpp"

namespace portlab::labkit {

class SnmpCounters {
public:
    // One protocol's two lines, names and values paired in order.
    struct Group {
        std::string protocol;  // "Udp", without the colon
        std::vector<std::pair<std::string, std::int64_t>> counters;
    };

    // The error names the line and what is wrong with it: a names line without its
    // values line, a different protocol or count on the values line, a value that is
    // not a whole number.
    [[nodiscard]] static Result<SnmpCounters> parse(std::string_view text);
    [[nodiscard]] static Result<SnmpCounters> read(const std::string& path = "/proc/net/snmp");

    // The counter `name` of `protocol` ("Udp", "InCsumErrors"); nullopt when this
    // kernel does not have it.
    [[nodiscard]] std::optional<std::int64_t> get(std::string_view protocol, std::string_view name) const;
    [[nodiscard]] const std::vector<Group>& groups() const noexcept { return groups_; }

private:
    std::vector<Group> groups_;
};

}  // namespace portlab::labkit
