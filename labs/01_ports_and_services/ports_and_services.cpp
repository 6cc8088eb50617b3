// Lab 01: what a port number is, and who decides what it means.
//
// A port is a 16-bit number; together with a protocol (TCP or UDP) and an address it
// names one socket. This lab prints IANA's three port categories, looks names and
// numbers up in /etc/services, reads the kernel's own port settings from /proc, and
// then asks the kernel, with a real bind() on 127.0.0.1, which ports this user may take.
//
//   lab01_ports_and_services                    examples: 22 53/udp 80 443 8080
//   lab01_ports_and_services 22 http 8080/udp
//   lab01_ports_and_services --json

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <asio.hpp>
#include <fmt/format.h>

#include "labkit/labkit.hpp"
#include "labkit/observe.hpp"
#include "portlab/text.hpp"
#include "portlab/ports.hpp"
#include "portlab/services.hpp"
#include "portlab/text_safety.hpp"

using namespace portlab;
using nlohmann::json;

namespace {

// One command-line argument, resolved, with the service each protocol names at that port.
struct Lookup {
    std::string query;
    PortSpec spec;
    std::vector<std::pair<Protocol, const ServiceEntry*>> services;  // nullptr: no name
};

Lookup look_up(const std::string& query, const PortSpec& spec, const ServiceTable& table) {
    Lookup lookup{query, spec, {}};
    for (const auto protocol : {Protocol::tcp, Protocol::udp}) {
        if (spec.protocol && *spec.protocol != protocol) continue;
        lookup.services.emplace_back(protocol, table.find_by_port(spec.port, protocol));
    }
    return lookup;
}

struct BindAttempt {
    Port port = 0;
    bool ok = false;
    std::string errno_name;  // "EACCES", "EADDRINUSE"; empty when ok
};

// Where the binds happen: one kernel, one host of the story, and the trace of each bind.
struct Binder {
    asio::io_context& io;
    labkit::Observer& see;
    const labkit::Host& host;
};

// socket() + bind() to 127.0.0.1:port, closed again at once: no listen() is needed,
// because the privilege and "in use" checks both happen in bind() (inet_bind in Linux).
// The trace gets the socket, the port it took or the errno it got, and its close.
BindAttempt try_bind(Binder& binder, Port port) {
    asio::ip::tcp::acceptor acceptor(binder.io);
    asio::error_code error;
    acceptor.open(asio::ip::tcp::v4(), error);
    if (error) {
        binder.see.record(labkit::fact::Failed{std::nullopt, "socket", error, binder.host.name}, labkit::quietly);
    } else {
        const auto ref = binder.see.open(binder.host, Protocol::tcp, IpFamily::v4);
        acceptor.bind({asio::ip::address_v4::loopback(), port}, error);
        const Endpoint wanted{IpAddress::loopback_v4(), port};
        if (error) binder.see.record(labkit::fact::Failed{ref, "bind", error, {}, wanted}, labkit::quietly);
        else binder.see.record(labkit::fact::Bound{ref, wanted, trace::BindHow::explicit_port}, labkit::quietly);
        asio::error_code ignored;
        acceptor.close(ignored);
        binder.see.record(labkit::fact::Closed{ref}, labkit::quietly);
    }
    if (!error) return {port, true, {}};
    const char* name = strerrorname_np(error.value());
    return {port, false, name != nullptr ? name : error.message()};
}

// A busy port (EADDRINUSE) says nothing about privilege, so try the next candidate.
std::vector<BindAttempt> bind_first_free(Binder& binder, const std::vector<Port>& candidates) {
    std::vector<BindAttempt> attempts;
    for (const Port port : candidates) {
        attempts.push_back(try_bind(binder, port));
        if (attempts.back().errno_name != "EADDRINUSE") break;
    }
    return attempts;
}

// Up to five ports walking away from `start` by `direction`, staying in 1..65535
// (port 0 in bind() means "any ephemeral port", not port zero).
std::vector<Port> candidates_from(int start, int direction) {
    std::vector<Port> ports;
    for (int port = std::clamp(start, 1, 65535); port >= 1 && port <= 65535 && ports.size() < 5; port += direction)
        ports.push_back(static_cast<Port>(port));
    return ports;
}

std::string services_text(const Lookup& lookup) {
    std::string text;
    for (const auto& [protocol, entry] : lookup.services) {
        // A services file is anyone's text: names and aliases shown escaped.
        std::string name = entry ? text::printable(entry->name) : "-";
        if (entry && !entry->aliases.empty()) {
            std::vector<std::string> aliases;
            for (const auto& alias : entry->aliases) aliases.push_back(text::printable(alias));
            name += " (" + fmt::format("{}", fmt::join(aliases, " ")) + ")";
        }
        text += fmt::format("{}: {:<22}", to_string(protocol), name);
    }
    return text.substr(0, text.find_last_not_of(' ') + 1);
}

json lookup_json(const Lookup& lookup) {
    json services = json::array();
    for (const auto& [protocol, entry] : lookup.services) {
        json aliases = json::array();
        if (entry)
            for (const auto& alias : entry->aliases) aliases.push_back(text::valid_utf8(alias));
        services.push_back({{"protocol", to_string(protocol)},
                            {"name", entry ? json(text::valid_utf8(entry->name)) : json(nullptr)},
                            {"aliases", std::move(aliases)}});
    }
    return {{"query", text::valid_utf8(lookup.query)},
            {"port", lookup.spec.port},
            {"protocol", lookup.spec.protocol ? json(to_string(*lookup.spec.protocol)) : json(nullptr)},
            {"category", to_string(category_of(lookup.spec.port))},
            {"services", services}};
}

std::string bind_result_text(const BindAttempt& attempt) {
    if (attempt.ok) return "ok, the port is ours (closed again at once)";
    if (attempt.errno_name == "EACCES") return "EACCES, permission denied";
    if (attempt.errno_name == "EADDRINUSE") return "EADDRINUSE, another socket already holds it; trying the next port";
    return attempt.errno_name;
}

}  // namespace

namespace {

// Why ports below the boundary are (not) this process's: inet_bind() asks for the
// capability (ns_capable(net->user_ns, CAP_NET_BIND_SERVICE)), never for uid 0, so root
// without it (setpriv --bounding-set=-net_bind_service, a container) is refused too.
std::string privilege_note(int boundary, uid_t euid, std::optional<bool> capable) {
    if (boundary <= 1) return "No port is privileged on this machine (ip_unprivileged_port_start is 0 or 1).";
    const std::string who = euid == 0 ? "You are root (effective uid 0) and" : fmt::format("Effective uid {}", euid);
    if (!capable)
        return fmt::format("Whether this process holds CAP_NET_BIND_SERVICE could not be read; the kernel checks "
                           "that capability, not the uid, for ports below {}.", boundary);
    if (*capable)
        return fmt::format("{} {}hold{} CAP_NET_BIND_SERVICE, so ports below {} are yours too: the kernel checks the "
                           "capability, not the uid.",
                           who, euid == 0 ? "" : "is not root but ", euid == 0 ? "" : "s", boundary);
    return fmt::format("{} lack{} CAP_NET_BIND_SERVICE, so the kernel refuses ports below {} (EACCES){}.", who,
                       euid == 0 ? "" : "s", boundary,
                       euid == 0 ? ": being root is not enough, the capability is what counts" : "");
}

}  // namespace

int main(int argc, char** argv) {
    return labkit::run_lab(argc, argv, {"lab01_ports_and_services", "Lab 01: port numbers, their names, and who may bind them"},
                           [argv](labkit::Lab& lab) {
        // --- Arguments --------------------------------------------------------------
        std::vector<std::string> queries;
        std::string services_file;
        lab.cli().add_option("ports", queries, "ports or service names: 22 http https/tcp 8080/udp");
        lab.add_input_option("--services", services_file, "read service names from FILE instead of /etc/services");
        lab.cli().footer("Example: lab01_ports_and_services 22 http 8080/udp");
        lab.parse();
        if (queries.empty()) queries = {"22", "53/udp", "80", "443", "8080"};

        auto table = ServiceTable::system_or_fallback();
        if (!services_file.empty()) {
            auto loaded = ServiceTable::load(services_file);
            if (!loaded) return lab.usage_error(loaded.error().message);
            table = std::move(*loaded);
        }

        // Resolve every argument before printing anything: a bad one is a usage error.
        std::vector<Lookup> lookups;
        for (const auto& query : queries) {
            const auto spec = resolve_port_spec(query, table);
            if (!spec) return lab.usage_error(spec.error().message);
            lookups.push_back(look_up(query, *spec, table));
        }

        auto& say = lab.narrate();
        auto& see = lab.observer();
        json facts = {{"lab", lab.name()}, {"services_source", table.source()}, {"services_fallback", table.is_fallback()}};
        say.title("Lab 01: ports and services");

        // --- 1. The three categories (IANA, RFC 6335 section 6) -----------------------
        see.step("the three port categories IANA uses (RFC 6335 section 6)");
        facts["categories"] = json::array();
        for (const auto category : {PortCategory::well_known, PortCategory::registered, PortCategory::dynamic}) {
            const auto range = range_of(category);
            say.note(fmt::format("{:<16} {:<12} {:>6} ports  {}", to_string(category), range.to_string(), range.size(),
                                 purpose_of(category)));
            facts["categories"].push_back({{"name", to_string(category)}, {"low", range.low}, {"high", range.high},
                                           {"size", range.size()}, {"purpose", purpose_of(category)}});
        }
        say.note("A port is 16 bits, 0-65535, counted separately for TCP and for UDP.");

        // --- 2. Names for numbers: /etc/services ------------------------------------
        if (table.is_fallback())
            see.step("look up each argument in the lab's built-in table (there is no /etc/services here)");
        else
            see.step("look up each argument in " + table.source() + " (the list getservbyname and getservbyport read)");
        facts["lookups"] = json::array();
        std::string getent_args;
        for (const auto& lookup : lookups) {
            say.note(fmt::format("{:<11} port {:<5} {:<16} {}", text::printable(lookup.query), lookup.spec.port,
                                 to_string(category_of(lookup.spec.port)), services_text(lookup)));
            facts["lookups"].push_back(lookup_json(lookup));
            getent_args += " " + lookup.query;
        }
        say.note("These names only label ports: the kernel never reads them, and they reserve nothing.");
        if (table.source() == "/etc/services") say.see_it_yourself("getent services" + getent_args);

        // --- 3. What this kernel is configured to do -----------------------------------
        see.step("read this kernel's port settings from /proc/sys/net/ipv4/");
        const auto ephemeral = read_ephemeral_range();
        if (ephemeral) {
            say.kernel(fmt::format("ephemeral ports {} ({}): connect() and bind(port 0) pick from these",
                                   ephemeral->to_string(), text::counted(ephemeral->size(), "port")));
            const auto shared = overlap(*ephemeral, dynamic_ports);
            say.note(shared ? fmt::format("IANA's dynamic range is {}; the two share {}, the rest is 'registered' ports.",
                                          dynamic_ports.to_string(), shared->to_string())
                            : fmt::format("IANA's dynamic range is {}; this range does not touch it.", dynamic_ports.to_string()));
            facts["ephemeral_range"] = {{"low", ephemeral->low}, {"high", ephemeral->high}, {"size", ephemeral->size()},
                                        {"source", ephemeral_range_path}};
        } else {
            say.kernel("no ephemeral range: " + ephemeral.error().message);
            facts["ephemeral_range"] = nullptr;
        }
        const auto unprivileged_start = read_unprivileged_port_start();
        if (unprivileged_start) {
            say.kernel(fmt::format("ports below {} need CAP_NET_BIND_SERVICE to bind (ip_unprivileged_port_start)",
                                   *unprivileged_start));
            facts["unprivileged_port_start"] = *unprivileged_start;
        } else {
            say.kernel("unknown privileged-port boundary (" + unprivileged_start.error().message + "); assuming 1024");
            facts["unprivileged_port_start"] = nullptr;
        }
        say.see_it_yourself("sysctl net.ipv4.ip_local_port_range net.ipv4.ip_unprivileged_port_start");

        // --- 4. Ask the kernel: bind() below and at the boundary -----------------------
        const int boundary = unprivileged_start.value_or(1024);
        asio::io_context io;
        Binder binder{io, see, see.declare({"server", {IpAddress::loopback_v4()}, "server"})};
        std::vector<BindAttempt> attempts;
        if (boundary > 1)
            see.step(fmt::format("bind() a TCP socket to 127.0.0.1 below {}, then at {} or above", boundary, boundary));
        else
            see.step("bind() a TCP socket to 127.0.0.1 (no port is privileged here)");
        if (boundary > 1) attempts = bind_first_free(binder, candidates_from(boundary - 1, -1));
        for (const auto& attempt : bind_first_free(binder, candidates_from(boundary, +1))) attempts.push_back(attempt);
        for (const auto& attempt : attempts)
            say.kernel(fmt::format("127.0.0.1:{:<5} -> {}", attempt.port, bind_result_text(attempt)));

        const auto euid = geteuid();
        const auto capable = read_cap_net_bind_service();
        say.note(privilege_note(boundary, euid, capable ? std::optional<bool>(*capable) : std::nullopt));
        say.note("Whatever /etc/services calls a port, any program may bind it: the kernel checks privilege and use, not names.");
        say.see_it_yourself("sudo -u nobody " + std::string(argv[0]) + "   (the same lab as an ordinary user)");

        facts["bind_attempts"] = json::array();
        for (const auto& attempt : attempts) {
            facts["bind_attempts"].push_back({{"port", attempt.port}, {"address", "127.0.0.1"}, {"protocol", "tcp"},
                                              {"ok", attempt.ok}, {"below_boundary", attempt.port < boundary},
                                              {"errno_name", attempt.ok ? json(nullptr) : json(attempt.errno_name)}});
        }
        facts["euid"] = euid;
        facts["cap_net_bind_service"] = capable ? json(*capable) : json(nullptr);

        if (lab.json()) lab.print_json(facts);
        return labkit::exit_ok;
    });
}
