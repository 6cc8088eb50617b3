#include "portlab/ports.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "portlab/text.hpp"

namespace portlab {
namespace {

std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

// /proc files are a page at most; a cap keeps a wrong path (a huge file) harmless.
Result<std::string> read_small_file(const std::string& path) {
    constexpr std::size_t limit = 64 * 1024;
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail("cannot read " + path + ": " + std::strerror(errno), std::error_code(errno, std::generic_category()));
    std::string text;
    text.resize(limit);
    in.read(text.data(), static_cast<std::streamsize>(limit));
    text.resize(static_cast<std::size_t>(in.gcount()));
    return text;
}

}  // namespace

Result<Port> parse_port_number(std::string_view text) {
    if (text.empty()) return fail("empty port number: a port is 0-65535");
    const bool negative = text.front() == '-' && text.size() > 1 &&
                          std::all_of(text.begin() + 1, text.end(), text::is_digit);
    if (negative) return fail(quoted(text) + " is negative: a port is 0-65535");
    // Only digits: no sign, no blanks, no "0x" — a port written any other way is a typo.
    if (!std::all_of(text.begin(), text.end(), text::is_digit))
        return fail(quoted(text) + " is not a number: a port is 0-65535, digits only");
    // Accumulate with an early exit, so "99999999999999999999" cannot overflow.
    std::uint32_t value = 0;
    for (const char c : text) {
        value = value * 10 + static_cast<std::uint32_t>(c - '0');
        if (value > 65535) return fail(quoted(text) + " is out of range 0-65535: a port is 16 bits");
    }
    return static_cast<Port>(value);
}

std::string PortRange::to_string() const {
    return std::to_string(low) + "-" + std::to_string(high);
}

std::string_view to_string(PortCategory category) noexcept {
    switch (category) {
        case PortCategory::well_known: return "well-known";
        case PortCategory::registered: return "registered";
        case PortCategory::dynamic: break;
    }
    return "dynamic/private";
}

std::string_view purpose_of(PortCategory category) noexcept {
    switch (category) {
        case PortCategory::well_known: return "standard services (ssh 22, http 80); IANA assigns them after IETF review";
        case PortCategory::registered: return "applications that asked IANA for a number (postgresql 5432, http-alt 8080)";
        case PortCategory::dynamic: break;
    }
    return "never assigned: for temporary (ephemeral) and private use";
}

Result<PortRange> parse_ephemeral_range(std::string_view text) {
    const auto words = text::split_words(text);
    if (words.size() != 2)
        return fail("ip_local_port_range should hold two numbers (low high), found " + std::to_string(words.size()));
    const auto low = parse_port_number(words[0]);
    if (!low) return fail("ip_local_port_range low end: " + low.error().message);
    const auto high = parse_port_number(words[1]);
    if (!high) return fail("ip_local_port_range high end: " + high.error().message);
    if (*low > *high)
        return fail("ip_local_port_range low end " + std::to_string(*low) + " is above its high end " + std::to_string(*high));
    return PortRange{*low, *high};
}

Result<Port> parse_unprivileged_port_start(std::string_view text) {
    const auto words = text::split_words(text);
    if (words.size() != 1)
        return fail("ip_unprivileged_port_start should hold one number, found " + std::to_string(words.size()));
    auto port = parse_port_number(words[0]);
    if (!port) return fail("ip_unprivileged_port_start: " + port.error().message);
    return port;
}

Result<PortRange> read_ephemeral_range(const std::string& path) {
    const auto text = read_small_file(path);
    if (!text) return text.error();
    return parse_ephemeral_range(*text);
}

Result<Port> read_unprivileged_port_start(const std::string& path) {
    const auto text = read_small_file(path);
    if (!text) return text.error();
    return parse_unprivileged_port_start(*text);
}

Result<bool> parse_cap_net_bind_service(std::string_view proc_status_text) {
    constexpr std::string_view key = "CapEff:";
    constexpr unsigned cap_net_bind_service = 10;  // linux/capability.h
    std::size_t line_start = 0;
    while (line_start < proc_status_text.size()) {
        auto line_end = proc_status_text.find('\n', line_start);
        if (line_end == std::string_view::npos) line_end = proc_status_text.size();
        const auto line = proc_status_text.substr(line_start, line_end - line_start);
        line_start = line_end + 1;
        if (!line.starts_with(key)) continue;
        const auto words = text::split_words(line.substr(key.size()));
        // The kernel prints the 64-bit mask as 16 hex digits.
        if (words.size() != 1 || words[0].empty() || words[0].size() > 16)
            return fail("CapEff line is not one hex mask: '" + std::string(line) + "'");
        std::uint64_t mask = 0;
        for (const char c : words[0]) {
            unsigned digit = 0;
            if (text::is_digit(c)) digit = static_cast<unsigned>(c - '0');
            else if (c >= 'a' && c <= 'f') digit = static_cast<unsigned>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') digit = static_cast<unsigned>(c - 'A' + 10);
            else return fail("CapEff line is not one hex mask: '" + std::string(line) + "'");
            mask = (mask << 4) | digit;
        }
        return ((mask >> cap_net_bind_service) & 1U) != 0;
    }
    return fail("no CapEff line in the process status");
}

Result<bool> read_cap_net_bind_service(const std::string& path) {
    const auto text = read_small_file(path);
    if (!text) return text.error();
    return parse_cap_net_bind_service(*text);
}

}  // namespace portlab
