#include "portlab/net.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include <fmt/format.h>

namespace portlab {

std::string_view to_string(Protocol protocol) noexcept {
    return protocol == Protocol::tcp ? "tcp" : "udp";
}

Result<Protocol> parse_protocol(std::string_view text) {
    std::string lower(text);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == "tcp") return Protocol::tcp;
    if (lower == "udp") return Protocol::udp;
    return fail("unknown protocol '" + std::string(text) + "' (expected tcp or udp)");
}

IpAddress IpAddress::v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) noexcept {
    IpAddress address;
    address.bytes_[0] = a;
    address.bytes_[1] = b;
    address.bytes_[2] = c;
    address.bytes_[3] = d;
    return address;
}

IpAddress IpAddress::loopback_v6() noexcept {
    IpAddress address;
    address.family_ = IpFamily::v6;
    address.bytes_[15] = 1;
    return address;
}

IpAddress IpAddress::any_v6() noexcept {
    IpAddress address;
    address.family_ = IpFamily::v6;
    return address;
}

Result<IpAddress> IpAddress::from_bytes(std::span<const std::uint8_t> bytes) {
    if (bytes.size() != 4 && bytes.size() != 16)
        return fail("an IP address has 4 or 16 bytes, not " + std::to_string(bytes.size()));
    IpAddress address;
    address.family_ = bytes.size() == 4 ? IpFamily::v4 : IpFamily::v6;
    std::copy(bytes.begin(), bytes.end(), address.bytes_.begin());
    return address;
}

Result<IpAddress> IpAddress::parse(std::string_view text) {
    // inet_pton needs a terminated string and rejects anything but exact
    // dotted-quad (no "127.1", no octal) or RFC 4291 text, which is what we want.
    const std::string copy(text);
    IpAddress address;
    if (inet_pton(AF_INET, copy.c_str(), address.bytes_.data()) == 1) return address;
    if (inet_pton(AF_INET6, copy.c_str(), address.bytes_.data()) == 1) {
        address.family_ = IpFamily::v6;
        return address;
    }
    return fail("'" + copy + "' is not an IPv4 or IPv6 address");
}

bool IpAddress::is_loopback() const noexcept {
    if (is_v4()) return bytes_[0] == 127;
    return std::all_of(bytes_.begin(), bytes_.begin() + 15, [](auto b) { return b == 0; }) && bytes_[15] == 1;
}

bool IpAddress::is_unspecified() const noexcept {
    const auto used = bytes();
    return std::all_of(used.begin(), used.end(), [](auto b) { return b == 0; });
}

std::string IpAddress::to_string() const {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), text, sizeof text);
    return text;
}

std::string Endpoint::to_string() const {
    if (address.is_v6()) return fmt::format("[{}]:{}", address.to_string(), port);
    return fmt::format("{}:{}", address.to_string(), port);
}

namespace {
Error not_an_endpoint(std::string_view text) {
    return fail(fmt::format("'{}' is not ADDRESS:PORT (IPv6 goes in brackets: [::1]:80)", text));
}
}  // namespace

Result<Endpoint> Endpoint::parse(std::string_view text) {
    std::string_view host;
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return not_an_endpoint(text);
        host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon)
            return not_an_endpoint(text);
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
    }
    auto address = IpAddress::parse(host);
    if (!address) return address.error();
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (port_text.empty() || ec != std::errc{} || end != port_text.data() + port_text.size() || value > 65535)
        return fail(fmt::format("'{}' is not a port number (0-65535)", port_text));
    return Endpoint{*address, static_cast<Port>(value)};
}

std::string FourTuple::to_string() const {
    return local.to_string() + " -> " + remote.to_string();
}

}  // namespace portlab
