#pragma once
// Port numbers as text, as IANA categories and as the Linux kernel configures them.
//
// A port is a 16-bit number (RFC 793 section 3.1, RFC 768): 0-65535, nothing else.
// IANA splits that space into three categories (RFC 6335 section 6); Linux, separately,
// picks ephemeral ports from its own range and guards the low ports with a privilege
// check. Those two kernel settings live in /proc/sys/net/ipv4/; their parsers are pure
// functions of the file's text so they can be tested with odd contents.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "portlab/net.hpp"
#include "portlab/result.hpp"

namespace portlab {

// Decimal digits only: "80" and "080" are 80. Everything else is an error with one
// readable line: "" (empty), "-1" (negative), "70000" (out of range 0-65535), and
// "8o", "+80", " 80", "0x50" (not a number). Service names are resolve_port_spec's job.
[[nodiscard]] Result<Port> parse_port_number(std::string_view text);

// An inclusive range low..high. Invariant when built by this module: low <= high.
struct PortRange {
    Port low = 0;
    Port high = 0;

    [[nodiscard]] constexpr bool contains(Port port) const noexcept { return low <= port && port <= high; }
    // How many ports, 0 for a (malformed) range with low > high; 65536 fits in size_t.
    [[nodiscard]] constexpr std::size_t size() const noexcept {
        return low <= high ? std::size_t{high} - low + 1 : 0;
    }
    // "32768-60999"
    [[nodiscard]] std::string to_string() const;

    friend constexpr bool operator==(const PortRange&, const PortRange&) = default;
};

// The ports both ranges contain, if any.
[[nodiscard]] constexpr std::optional<PortRange> overlap(PortRange a, PortRange b) noexcept {
    const Port low = a.low > b.low ? a.low : b.low;
    const Port high = a.high < b.high ? a.high : b.high;
    if (low > high) return std::nullopt;
    return PortRange{low, high};
}

// RFC 6335 section 6 names them System Ports, User Ports and Dynamic and/or Private
// Ports; the older names below (RFC 1700 era) are the ones people still say.
enum class PortCategory : std::uint8_t { well_known, registered, dynamic };

inline constexpr PortRange well_known_ports{0, 1023};      // assigned by IANA with IETF review
inline constexpr PortRange registered_ports{1024, 49151};  // assigned by IANA on request
inline constexpr PortRange dynamic_ports{49152, 65535};    // never assigned: free for temporary use

[[nodiscard]] constexpr PortRange range_of(PortCategory category) noexcept {
    switch (category) {
        case PortCategory::well_known: return well_known_ports;
        case PortCategory::registered: return registered_ports;
        case PortCategory::dynamic: break;
    }
    return dynamic_ports;
}

[[nodiscard]] constexpr PortCategory category_of(Port port) noexcept {
    if (well_known_ports.contains(port)) return PortCategory::well_known;
    if (registered_ports.contains(port)) return PortCategory::registered;
    return PortCategory::dynamic;
}

// "well-known", "registered", "dynamic/private"
[[nodiscard]] std::string_view to_string(PortCategory category) noexcept;
// One line on what the category is for, for labs and the visualizer to print.
[[nodiscard]] std::string_view purpose_of(PortCategory category) noexcept;

// --- What this Linux kernel is configured to do ------------------------------------

inline constexpr const char* ephemeral_range_path = "/proc/sys/net/ipv4/ip_local_port_range";
inline constexpr const char* unprivileged_port_start_path = "/proc/sys/net/ipv4/ip_unprivileged_port_start";

// The text of ip_local_port_range: two numbers separated by blanks ("32768\t60999\n",
// the kernel prints a tab). The kernel itself refuses low > high, so that is an error.
[[nodiscard]] Result<PortRange> parse_ephemeral_range(std::string_view text);
// The text of ip_unprivileged_port_start: one number 0-65535 (the sysctl's limits,
// Linux 4.11+). Ports below it need CAP_NET_BIND_SERVICE to bind; 0 means none do.
[[nodiscard]] Result<Port> parse_unprivileged_port_start(std::string_view text);

// The range Linux picks ports from for connect() and bind(port 0).
[[nodiscard]] Result<PortRange> read_ephemeral_range(const std::string& path = ephemeral_range_path);
// The first port anyone may bind; below it the kernel answers EACCES without the capability.
[[nodiscard]] Result<Port> read_unprivileged_port_start(const std::string& path = unprivileged_port_start_path);

// Whether CAP_NET_BIND_SERVICE (capability bit 10, linux/capability.h) is in the
// effective set given as the "CapEff:" line of /proc/<pid>/status. The kernel checks
// this capability, not uid 0, before a bind below the unprivileged port start.
[[nodiscard]] Result<bool> parse_cap_net_bind_service(std::string_view proc_status_text);
[[nodiscard]] Result<bool> read_cap_net_bind_service(const std::string& path = "/proc/self/status");

}  // namespace portlab
