#include "portlab/services.hpp"

#include <algorithm>
#include <istream>
#include <sstream>

#include "portlab/input_file.hpp"
#include "portlab/ports.hpp"
#include "portlab/text.hpp"

namespace portlab {
namespace {

// One services(5) line without its comment, already split into words.
Result<ServiceEntry> parse_service_words(const std::vector<std::string_view>& words) {
    if (words.size() < 2) return fail("'" + std::string(words[0]) + "' has no port/protocol after it");
    const auto slash = words[1].find('/');
    if (slash == std::string_view::npos)
        return fail("'" + std::string(words[1]) + "' is not port/protocol (no '/')");
    const auto port = parse_port_number(words[1].substr(0, slash));
    if (!port) return port.error();
    const auto protocol = parse_protocol(words[1].substr(slash + 1));
    if (!protocol) return protocol.error();
    ServiceEntry entry{std::string(words[0]), {}, *port, *protocol};
    for (std::size_t i = 2; i < words.size(); ++i) entry.aliases.emplace_back(words[i]);
    return entry;
}

}  // namespace

void ServiceTable::add(ServiceEntry entry) {
    const std::size_t index = entries_.size();
    // First line wins, as glibc's files backend returns the first match it reads.
    by_port_.try_emplace({entry.port, entry.protocol}, index);
    by_name_[entry.name].push_back(index);
    for (const auto& alias : entry.aliases) {
        auto& indices = by_name_[alias];
        if (indices.empty() || indices.back() != index) indices.push_back(index);
    }
    entries_.push_back(std::move(entry));
}

ServiceTable ServiceTable::parse(std::istream& in, std::vector<std::string>* skipped_lines) {
    ServiceTable table;
    std::string line;
    std::size_t line_number = 0;
    while (std::getline(in, line)) {
        ++line_number;
        std::string_view text = line;
        text = text.substr(0, text.find('#'));  // comments run to the end of the line
        const auto words = text::split_words(text);
        if (words.empty()) continue;
        auto entry = parse_service_words(words);
        if (!entry) {
            if (skipped_lines) skipped_lines->push_back("line " + std::to_string(line_number) + ": " + entry.error().message);
            continue;
        }
        table.add(std::move(*entry));
    }
    return table;
}

Result<ServiceTable> ServiceTable::load(const std::string& path) {
    auto text = read_input_file(path, max_services_file_bytes);
    if (!text) return text.error();
    std::istringstream in(std::move(*text));
    auto table = parse(in);
    table.source_ = path;
    return table;
}

// IANA's service name and transport protocol registry for the best-known ports
// (https://www.iana.org/assignments/service-names-port-numbers). Like Debian's
// netbase, only the protocols the service really uses are listed, and aliases
// are the names Unix systems also accept (www for http, imap2 for imap).
ServiceTable ServiceTable::fallback() {
    constexpr auto tcp = Protocol::tcp;
    constexpr auto udp = Protocol::udp;
    std::vector<ServiceEntry> well_known{
        {"ftp-data", {}, 20, tcp},
        {"ftp", {}, 21, tcp},
        {"ssh", {}, 22, tcp},
        {"telnet", {}, 23, tcp},
        {"smtp", {"mail"}, 25, tcp},
        {"domain", {}, 53, tcp},
        {"domain", {}, 53, udp},
        {"bootps", {}, 67, udp},
        {"bootpc", {}, 68, udp},
        {"tftp", {}, 69, udp},
        {"http", {"www"}, 80, tcp},
        {"kerberos", {"kerberos5", "krb5"}, 88, tcp},
        {"kerberos", {"kerberos5", "krb5"}, 88, udp},
        {"pop3", {"pop-3"}, 110, tcp},
        {"nntp", {"readnews"}, 119, tcp},
        {"ntp", {}, 123, udp},
        {"imap", {"imap2"}, 143, tcp},
        {"snmp", {}, 161, udp},
        {"snmp-trap", {"snmptrap"}, 162, udp},
        {"irc", {}, 194, tcp},
        {"ldap", {}, 389, tcp},
        {"https", {}, 443, tcp},
        {"https", {}, 443, udp},  // HTTP/3 over QUIC (RFC 9114)
        {"submissions", {"smtps"}, 465, tcp},
        {"syslog", {}, 514, udp},
        {"submission", {}, 587, tcp},
        {"domain-s", {}, 853, tcp},
        {"imaps", {}, 993, tcp},
        {"pop3s", {}, 995, tcp},
    };
    ServiceTable table;
    for (auto& entry : well_known) table.add(std::move(entry));
    table.source_ = "built-in table";
    table.is_fallback_ = true;
    return table;
}

ServiceTable ServiceTable::system_or_fallback() {
    auto system = load();
    if (system) return std::move(*system);
    return fallback();
}

const ServiceEntry* ServiceTable::find_by_name(std::string_view name_or_alias, std::optional<Protocol> protocol) const {
    const auto found = by_name_.find(name_or_alias);
    if (found == by_name_.end()) return nullptr;
    for (const std::size_t index : found->second) {
        if (!protocol || entries_[index].protocol == *protocol) return &entries_[index];
    }
    return nullptr;
}

const ServiceEntry* ServiceTable::find_by_port(Port port, Protocol protocol) const {
    const auto found = by_port_.find({port, protocol});
    return found == by_port_.end() ? nullptr : &entries_[found->second];
}

namespace {

std::string where(const ServiceTable& table) {
    if (table.is_fallback()) return "the built-in table";
    if (table.source().empty()) return "the services list";
    return table.source();
}

std::string official_name_for(const ServiceTable& table, Port port, std::optional<Protocol> protocol) {
    for (const auto candidate : {Protocol::tcp, Protocol::udp}) {
        if (protocol && *protocol != candidate) continue;
        if (const auto* entry = table.find_by_port(port, candidate)) return entry->name;
    }
    return {};
}

}  // namespace

Result<PortSpec> resolve_port_spec(std::string_view text, const ServiceTable& table) {
    const auto slash = text.find('/');
    const std::string_view name_or_number = text.substr(0, slash);
    std::optional<Protocol> protocol;
    if (slash != std::string_view::npos) {
        const auto parsed = parse_protocol(text.substr(slash + 1));
        if (!parsed) return parsed.error();
        protocol = *parsed;
    }

    // Digits (or a sign, or nothing) mean a number. A word starting with a digit may
    // still be a service name (RFC 6335 5.1 only asks for one letter: "3com-tsmux"),
    // so only when no such name exists is it reported as a bad number ("8o").
    const bool looks_numeric = name_or_number.empty() || text::is_digit(name_or_number.front()) ||
                               name_or_number.front() == '-' || name_or_number.front() == '+';
    if (looks_numeric) {
        const auto port = parse_port_number(name_or_number);
        if (port) return PortSpec{*port, protocol, official_name_for(table, *port, protocol)};
        if (!table.find_by_name(name_or_number, protocol)) return port.error();
    }

    if (const auto* entry = table.find_by_name(name_or_number, protocol))
        return PortSpec{entry->port, protocol, entry->name};
    const std::string name(name_or_number);
    if (const auto* other = table.find_by_name(name_or_number))
        return fail("'" + name + "' is listed for " + std::string(to_string(other->protocol)) + ", not " +
                    std::string(to_string(*protocol)) + ", in " + where(table));
    return fail("unknown service name '" + name + "' (not in " + where(table) + ")");
}

}  // namespace portlab
