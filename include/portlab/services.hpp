#pragma once
// Service names for port numbers: the /etc/services list (services(5)).
//
// /etc/services is a phone book, not a rule: it lets getservbyname("http", "tcp")
// answer 80, and lets ss print ":http". The kernel never reads it; any program may
// bind any port (given the privilege for low ones), whatever the file calls it.

#include <cstdint>
#include <cstddef>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portlab/net.hpp"
#include "portlab/result.hpp"

namespace portlab {

// Debian's /etc/services is 12 KiB; a thousand times that is no services file.
inline constexpr std::uint64_t max_services_file_bytes = 16ull << 20;

struct ServiceEntry {
    std::string name;                  // official name, first word of the line
    std::vector<std::string> aliases;  // other names for the same port/protocol
    Port port = 0;
    Protocol protocol = Protocol::tcp;

    friend bool operator==(const ServiceEntry&, const ServiceEntry&) = default;
};

class ServiceTable {
public:
    // Reads services(5) lines: "name port/protocol [alias ...] [# comment]". Blank lines
    // and comments are fine; a line that cannot be understood (no port, port > 65535,
    // a protocol other than tcp/udp such as sctp or ddp) is left out and, when
    // skipped_lines is given, described there as "line N: reason".
    // When a name or port/protocol appears twice, the first line wins, as in glibc.
    [[nodiscard]] static ServiceTable parse(std::istream& in, std::vector<std::string>* skipped_lines = nullptr);
    // Only a regular file of at most max_services_file_bytes (input_file.hpp): /dev/zero
    // or a FIFO is refused at once rather than read forever.
    [[nodiscard]] static Result<ServiceTable> load(const std::string& path = "/etc/services");
    // The well-known ports as IANA assigns them, for systems without /etc/services.
    [[nodiscard]] static ServiceTable fallback();
    // /etc/services if it can be read, else fallback(); source() says which.
    [[nodiscard]] static ServiceTable system_or_fallback();

    // Where the entries came from: a file path, or "built-in table" for fallback().
    [[nodiscard]] const std::string& source() const noexcept { return source_; }
    [[nodiscard]] bool is_fallback() const noexcept { return is_fallback_; }

    // By official name or alias (case-sensitive, as getservbyname); with no protocol,
    // the first entry in file order. nullptr when there is none.
    [[nodiscard]] const ServiceEntry* find_by_name(std::string_view name_or_alias,
                                                   std::optional<Protocol> protocol = {}) const;
    [[nodiscard]] const ServiceEntry* find_by_port(Port port, Protocol protocol) const;
    [[nodiscard]] std::span<const ServiceEntry> entries() const noexcept { return entries_; }

private:
    void add(ServiceEntry entry);

    std::vector<ServiceEntry> entries_;
    // Indices into entries_ (not pointers, so copies of a table stay valid).
    std::map<std::string, std::vector<std::size_t>, std::less<>> by_name_;  // name and aliases
    std::map<std::pair<Port, Protocol>, std::size_t> by_port_;
    std::string source_;
    bool is_fallback_ = false;
};

// A port as a user writes it: "80", "http", "https/tcp", "8080/udp", "domain/udp".
struct PortSpec {
    Port port = 0;
    std::optional<Protocol> protocol;  // set only when the text named one
    std::string service_name;          // official name; empty when numeric and unknown
};

// Errors, one line each: "unknown service name 'foo' (not in /etc/services)",
// "unknown protocol 'sctp' (expected tcp or udp)", and parse_port_number's for
// numbers ("70000" is out of range).
[[nodiscard]] Result<PortSpec> resolve_port_spec(std::string_view text, const ServiceTable& table);

}  // namespace portlab
