// Lab 08: what a port looks like from outside.
//
// A scanner knows nothing about the programs on a machine; it only knocks on each port
// and reads the answer. This lab opens a few sockets of its own (a TCP listener, a UDP
// socket that answers and one that stays silent), then runs a TCP connect scan and a UDP
// scan of loopback with Asio, and reports each port as nmap does: open, closed, filtered
// or open|filtered, with the reason (syn-ack, conn-refused, no-response, port-unreach).
//
//   lab08_port_scanner                       ports 1-1024 of 127.0.0.1, TCP and UDP
//   lab08_port_scanner -p 1-65535 --scan tcp  every TCP port (about a second)
//   lab08_port_scanner --top 100 --json
//
// It scans loopback only: anything else is refused (exit 2).

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <optional>
#include <thread>

#include <asio.hpp>
#include <fmt/format.h>

#include "labkit/netns.hpp"
#include "labkit/labkit.hpp"
#include "portlab/text.hpp"
#include "portlab/ports.hpp"
#include "portlab/scan.hpp"
#include "portlab/services.hpp"
#include "labkit/scan_engine.hpp"

using namespace portlab;
using nlohmann::json;

namespace {

// ---- the lab's own sockets: something to find ----------------------------------------

// A TCP listener, a UDP socket that answers every datagram, and one that never answers.
// The kernel completes TCP handshakes for a listener by itself (the accept queue), so
// the listener needs no accept(); the UDP responder needs a thread to send replies.
class DemoSockets {
public:
    explicit DemoSockets(const IpAddress& address)
        : tcp_(io_), udp_answering_(io_), udp_silent_(io_) {
        const auto ip = labkit::to_asio_address(address);
        tcp_.open(ip.is_v4() ? asio::ip::tcp::v4() : asio::ip::tcp::v6());
        tcp_.bind({ip, 0});
        tcp_.listen(asio::socket_base::max_listen_connections);
        for (auto* socket : {&udp_answering_, &udp_silent_}) {
            socket->open(ip.is_v4() ? asio::ip::udp::v4() : asio::ip::udp::v6());
            socket->bind({ip, 0});
        }
        // A bounded wait per receive, so the thread notices `stop_` within 100 ms.
        const timeval tick{0, 100'000};
        ::setsockopt(udp_answering_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof(tick));
        responder_ = std::thread([this] { answer_datagrams(); });
    }
    DemoSockets(const DemoSockets&) = delete;
    DemoSockets& operator=(const DemoSockets&) = delete;
    ~DemoSockets() {
        stop_ = true;
        responder_.join();
    }

    [[nodiscard]] Port tcp_listener() const { return tcp_.local_endpoint().port(); }
    [[nodiscard]] Port udp_answering() const { return udp_answering_.local_endpoint().port(); }
    [[nodiscard]] Port udp_silent() const { return udp_silent_.local_endpoint().port(); }

private:
    // Plain recvfrom()/sendto(): Asio's synchronous receive would turn the SO_RCVTIMEO
    // timeout (EAGAIN) into an endless poll().
    void answer_datagrams() {
        const int fd = udp_answering_.native_handle();
        std::array<char, 512> buffer{};
        static constexpr char reply[] = "hello from lab08\n";
        while (!stop_) {
            sockaddr_storage sender{};
            socklen_t length = sizeof(sender);
            const auto received = ::recvfrom(fd, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&sender), &length);
            if (received >= 0) ::sendto(fd, reply, sizeof(reply) - 1, 0, reinterpret_cast<sockaddr*>(&sender), length);
        }
    }

    asio::io_context io_;
    asio::ip::tcp::acceptor tcp_;
    asio::ip::udp::socket udp_answering_;
    asio::ip::udp::socket udp_silent_;
    std::atomic<bool> stop_{false};
    std::thread responder_;
};

// ---- arguments ----------------------------------------------------------------------

Result<IpAddress> parse_target(const std::string& text) {
    if (text == "localhost") return IpAddress::loopback_v4();
    auto address = IpAddress::parse(text);
    if (!address) return fail("'" + text + "' is not an IP address (give 127.0.0.1, another 127.x.y.z, ::1 or localhost)");
    if (!address->is_loopback())
        return fail("refusing to scan " + address->to_string() +
                    ": this lab scans only loopback addresses (127.0.0.0/8, ::1); scanning another machine needs "
                    "its owner's permission");
    return address;
}

// ---- reporting ------------------------------------------------------------------------

struct DemoPorts {
    Port tcp_listener = 0;
    Port udp_answering = 0;
    Port udp_silent = 0;
};

std::string demo_note(const DemoPorts& demo, Protocol protocol, Port port) {
    if (protocol == Protocol::tcp && port == demo.tcp_listener) return "this lab's TCP listener";
    if (protocol == Protocol::udp && port == demo.udp_answering) return "this lab's UDP socket that answers";
    if (protocol == Protocol::udp && port == demo.udp_silent) return "this lab's UDP socket that never answers";
    return "";
}

// The SERVICE column's names come from /etc/services (what getservbyport() reads). nmap names
// the ports of its report from its own nmap-services, which can differ (8080: http-alt in
// Debian's file, http-proxy in nmap's), so the lab shows nmap's name beside its own where
// they differ: a name is a label from a list, on both sides, never what really answers.
struct ServiceNames {
    const ServiceTable& services;
    std::map<std::pair<Protocol, Port>, std::string> nmap;  // empty when nmap is not installed

    ServiceNames(const ServiceTable& table, const std::vector<scanner::NmapService>& nmap_services) : services(table) {
        for (const auto& entry : nmap_services) nmap.try_emplace({entry.protocol, entry.port}, entry.name);
    }
    [[nodiscard]] std::string ours(Port port, Protocol protocol) const {
        const auto* entry = services.find_by_port(port, protocol);
        return entry ? entry->name : "unknown";
    }
    [[nodiscard]] std::optional<std::string> nmaps(Port port, Protocol protocol) const {
        const auto found = nmap.find({protocol, port});
        return found == nmap.end() ? std::nullopt : std::optional(found->second);
    }
    [[nodiscard]] std::string difference(Port port, Protocol protocol) const {
        const auto theirs = nmaps(port, protocol);
        return theirs && *theirs != ours(port, protocol) ? fmt::format("nmap-services: {}", *theirs) : "";
    }
};

// The state (with its reason) most ports share: nmap leaves those out of its table
// ("Not shown: 1023 closed tcp ports (conn-refused)").
std::pair<scan::PortState, scan::Reason> most_common(const std::vector<scanner::PortResult>& results) {
    std::map<std::pair<scan::PortState, scan::Reason>, std::size_t> counts;
    for (const auto& result : results) ++counts[{result.state, result.reason}];
    return std::max_element(counts.begin(), counts.end(), [](const auto& a, const auto& b) { return a.second < b.second; })
        ->first;
}

// Small scans list every port; big ones leave out the common state.
constexpr std::size_t list_everything_up_to = 25;

std::vector<std::string> non_empty(std::vector<std::string> texts) {
    std::erase_if(texts, [](const std::string& text) { return text.empty(); });
    return texts;
}

bool shown(const scanner::PortResult& result, std::pair<scan::PortState, scan::Reason> common, std::size_t total) {
    return total <= list_everything_up_to || std::pair{result.state, result.reason} != common;
}

void print_table(labkit::Narrator& say, const scanner::ScanReport& report, const ServiceNames& names,
                 const DemoPorts& demo) {
    const auto protocol = report.protocol;
    const auto common = most_common(report.results);
    std::size_t hidden = 0;
    say.note(fmt::format("{:<11} {:<14} {:<16} {:<13} {}", "PORT", "STATE", "SERVICE", "REASON", ""));
    for (const auto& result : report.results) {
        if (!shown(result, common, report.results.size())) {
            ++hidden;
            continue;
        }
        const auto notes = fmt::format("{}", fmt::join(non_empty({demo_note(demo, protocol, result.port),
                                                                  names.difference(result.port, protocol)}), "; "));
        say.note(fmt::format("{:<11} {:<14} {:<16} {:<13} {}", fmt::format("{}/{}", result.port, to_string(protocol)),
                             to_string(result.state), names.ours(result.port, protocol), to_string(result.reason), notes));
    }
    say.note(fmt::format("SERVICE: names from {}{}", names.services.source(),
                         names.nmap.empty() ? "" : "; nmap names ports from its own nmap-services, noted where it differs"));
    if (hidden > 0)
        say.note(fmt::format("Not shown: {} {} {} {} ({})", hidden, to_string(common.first), to_string(protocol),
                             hidden == 1 ? "port" : "ports", to_string(common.second)));
}

json report_json(const scanner::ScanReport& report, const ServiceNames& names, const DemoPorts& demo) {
    const auto protocol = report.protocol;
    const auto common = most_common(report.results);
    std::map<std::string, std::size_t> counts;
    json ports = json::array();
    std::vector<Port> hidden;
    for (const auto& result : report.results) {
        ++counts[std::string(to_string(result.state))];
        // The JSON leaves out only closed ports, and names them in extraports.ranges.
        if (common.first == scan::PortState::closed && std::pair{result.state, result.reason} == common) {
            hidden.push_back(result.port);
            continue;
        }
        const auto note = demo_note(demo, protocol, result.port);
        ports.push_back({{"port", result.port},
                         {"state", to_string(result.state)},
                         {"reason", to_string(result.reason)},
                         {"service", names.ours(result.port, protocol)},
                         {"nmap_service", names.nmaps(result.port, protocol) ? json(*names.nmaps(result.port, protocol)) : json(nullptr)},
                         {"note", note.empty() ? json(nullptr) : json(note)}});
    }
    json document = {{"protocol", to_string(protocol)},
                     {"ports_scanned", report.results.size()},
                     {"elapsed_ms", static_cast<double>(report.elapsed.count()) / 1000.0},
                     {"counts", counts},
                     {"self_connects", report.self_connects},
                     {"waited_for_answer", report.waited},
                     {"ports", ports}};
    if (!hidden.empty())
        document["extraports"] = {{"state", to_string(common.first)},
                                  {"reason", to_string(common.second)},
                                  {"count", hidden.size()},
                                  {"ranges", scanner::compress_ranges(hidden)}};
    else
        document["extraports"] = nullptr;
    return document;
}

// The lab's own sockets, as the trace and --json name them: a listener and two UDP
// sockets on the target, their ports chosen by the kernel (bind() to port 0).
std::vector<labkit::SocketRef> record_demo_sockets(labkit::Observer& see, const labkit::Host& host,
                                                   const IpAddress& address, const DemoPorts& demo) {
    using namespace labkit::fact;
    const auto listener = see.open(host, Protocol::tcp, address.family());
    see.record(Bound{listener, {address, demo.tcp_listener}, trace::BindHow::bind_zero}, labkit::quietly);
    see.record(Listening{listener, asio::socket_base::max_listen_connections}, labkit::quietly);
    std::vector<labkit::SocketRef> refs{listener};
    for (const Port port : {demo.udp_answering, demo.udp_silent}) {
        const auto udp = see.open(host, Protocol::udp, address.family());
        see.record(Bound{udp, {address, port}, trace::BindHow::bind_zero}, labkit::quietly);
        refs.push_back(udp);
    }
    return refs;
}

// Each probe and each verdict goes into the trace (scan_probe, scan_result) as it
// happens, so portlab-viz replays the scan port by port.
void record_scan_in_trace(labkit::Observer& see, const IpAddress& target, scanner::ScanOptions& options) {
    const auto scan_type = [&options] {
        return options.protocol == Protocol::tcp ? scan::ScanType::connect : scan::ScanType::udp;
    };
    options.on_probe = [&see, target, scan_type](Port port, std::uint32_t attempt) {
        see.record(labkit::fact::Probed{"scanner", scan_type(), {target, port}, attempt, std::nullopt});
    };
    options.on_result = [&see, target, scan_type](const scanner::PortResult& result) {
        see.record(labkit::fact::ScanConcluded{"scanner", scan_type(), {target, result.port}, {result.state, result.reason}});
    };
}

// "[##########..........]  50%  32768/65535 ports" on stderr, redrawn in place.
void draw_progress(std::size_t done, std::size_t total) {
    constexpr int width = 30;
    const int filled = total == 0 ? width : static_cast<int>(done * width / total);
    std::fprintf(stderr, "\r  [%s%s] %3zu%%  %zu/%zu ports", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), total == 0 ? std::size_t{100} : done * 100 / total, done, total);
    if (done == total) std::fprintf(stderr, "\r%*s\r", width + 40, "");
    std::fflush(stderr);
}

std::string describe_ports(const std::vector<Port>& ports) {
    const auto ranges = scanner::compress_ranges(ports);
    return ranges.size() <= 60 ? ranges : fmt::format("{} ports", ports.size());
}

// How many ports of a scan ended in each state: {"closed": 188, "open|filtered": 12}.
json state_counts(const scanner::ScanReport& report) {
    std::map<std::string, std::size_t> counts;
    for (const auto& result : report.results) ++counts[std::string(to_string(result.state))];
    return {{"counts", counts}, {"seconds", static_cast<double>(report.elapsed.count()) / 1e6}};
}

// Last step with --veth: the same UDP scan twice inside a private namespace, once over its
// lo and once across a veth link to a second namespace (192.0.2.2). Loopback is exempt from
// ICMP rate limits (icmpv4_xrlim_allow, net/ipv4/icmp.c, lets everything to lo through);
// across a link the kernel answers closed ports at net.ipv4.icmp_ratelimit (one per 1000 ms
// after a burst of 6, per destination), so most closed ports fall silent: open|filtered.
std::optional<int> compare_lo_and_veth(labkit::Lab& lab, const std::vector<Port>& ports, scanner::ScanOptions options,
                                       json& facts) {
    auto& say = lab.narrate();
    say.step(fmt::format("the same UDP scan of {} inside a private namespace: over its lo, then across a veth link to "
                         "a second namespace ({})", describe_ports(ports), neighbour_address.to_string()));
    options.protocol = Protocol::udp;
    options.progress = nullptr;
    options.on_probe = nullptr;  // the trace tells the host's story; this one stays in its namespace
    options.on_result = nullptr;
    NetnsSettings settings;
    settings.veth_neighbour = true;
    const auto limit = options.timeout * (options.udp_retries + 1) * 4 + std::chrono::seconds(10);
    const auto compared = run_in_private_netns(
        [&] {
            auto over_lo = options;
            over_lo.target = IpAddress::loopback_v4();
            auto across = options;
            across.target = neighbour_address;
            across.target_in_private_namespace = true;  // this process is inside the namespace it made
            const auto lo = scanner::run_scan(ports, over_lo);
            const auto veth = scanner::run_scan(ports, across);
            if (!lo) throw std::runtime_error(lo.error().message);
            if (!veth) throw std::runtime_error(veth.error().message);
            return json{{"lo", state_counts(*lo)}, {"veth", state_counts(*veth)}};
        },
        settings, std::chrono::duration_cast<std::chrono::milliseconds>(limit));
    if (!compared) {
        say.note("not shown here: " + compared.error().message);
        facts["veth_comparison"] = {{"available", false}, {"why", compared.error().message}};
        return std::nullopt;
    }
    for (const auto* link : {"lo", "veth"}) {
        std::vector<std::string> parts;
        for (const auto& [state, count] : compared->at(link).at("counts").items())
            parts.push_back(fmt::format("{} {}", count.get<std::size_t>(), state));
        say.kernel(fmt::format("{:<5} {:<28} in {:.3f} s", link, fmt::format("{}", fmt::join(parts, ", ")),
                               compared->at(link).at("seconds").get<double>()));
    }
    say.note("Over lo every closed port answers at once: loopback is exempt from ICMP rate limits. Across a link the");
    say.note("kernel sends port unreachables to one host at net.ipv4.icmp_ratelimit (1 per 1000 ms after a burst of 6),");
    say.note("so most closed ports stay silent and look open|filtered. A fast UDP scan on lo is a loopback artefact;");
    say.note("nmap slows its UDP scans down to this rate for the same reason.");
    say.see_it_yourself("sysctl net.ipv4.icmp_ratelimit net.ipv4.icmp_ratemask net.ipv4.icmp_msgs_per_sec");
    facts["veth_comparison"] = {{"available", true}, {"lo", compared->at("lo")}, {"veth", compared->at("veth")},
                                {"neighbour", neighbour_address.to_string()}};
    return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
    return labkit::run_lab(argc, argv, {"lab08_port_scanner", "Lab 08: scan loopback ports like nmap -sT/-sU: open, closed, filtered"},
                           [](labkit::Lab& lab) {
        // --- Arguments --------------------------------------------------------------
        std::string target_text = "127.0.0.1";
        std::string port_list;
        std::size_t top = 0;
        std::string scan_types = "both";
        std::size_t concurrency = 256;
        int timeout_ms = 1000;
        int retries = 1;
        bool no_demo = false;
        bool no_progress = false;
        auto& cli = lab.cli();
        cli.add_option("target", target_text, "loopback address to scan: 127.0.0.1 (default), 127.x.y.z, ::1, localhost");
        auto* ports_option = cli.add_option("-p,--ports", port_list, "ports: 1-1024,8080,http; '-' for 1-65535 (default 1-1024)")->type_name("LIST");
        cli.add_option("--top", top, "the N most common ports (nmap's frequency table when nmap is installed, "
                                     "else the first N in /etc/services)")->type_name("N")
            ->check(CLI::Range(std::size_t{1}, std::size_t{65535}));
        cli.add_option("--scan", scan_types, "tcp, udp or both (default both)")->check(CLI::IsMember({"tcp", "udp", "both"}));
        cli.add_option("--concurrency", concurrency, "probes waiting for an answer at once (default 256)")
            ->check(CLI::Range(std::size_t{1}, std::size_t{4096}));
        cli.add_option("--timeout", timeout_ms, "milliseconds to wait for an answer (default 1000)")
            ->check(CLI::Range(1, 60000));
        cli.add_option("--retries", retries, "extra UDP datagrams before open|filtered (default 1)")->check(CLI::Range(0, 5));
        cli.add_flag("--no-demo", no_demo, "do not open the lab's own listener and UDP sockets");
        cli.add_flag("--no-progress", no_progress, "no progress bar, even on a terminal");
        bool veth = false;
        cli.add_flag("--veth", veth, "last, scan the UDP ports again in a private namespace, over lo and across a veth "
                                     "link to a second one: the ICMP rate limit loopback skips");
        cli.footer("Examples: lab08_port_scanner -p 1-65535 --scan tcp    lab08_port_scanner --top 100 --json");
        lab.parse();

        const auto target = parse_target(target_text);
        if (!target) return lab.usage_error(target.error().message);
        if (ports_option->count() > 0 && port_list.empty()) return lab.usage_error("--ports: empty list: give e.g. 1-1024,8080");
        if (!port_list.empty() && top > 0) return lab.usage_error("give --ports or --top, not both");
        const auto services = ServiceTable::system_or_fallback();
        const ServiceNames names(services, scanner::read_nmap_services());
        const bool scan_tcp = scan_types != "udp";
        const bool scan_udp = scan_types != "tcp";

        std::vector<Port> ports;
        std::string ports_source = "--ports";
        if (top > 0) {
            const auto chosen = scanner::top_ports(top, scan_tcp ? Protocol::tcp : Protocol::udp, services);
            if (!chosen) return lab.usage_error(chosen.error().message);
            ports = chosen->ports;
            ports_source = chosen->source;
        } else {
            if (port_list.empty()) {
                port_list = "1-1024";
                ports_source = "default";
            }
            auto parsed = scanner::parse_port_list(port_list, services);
            if (!parsed) return lab.usage_error(parsed.error().message);
            ports = std::move(*parsed);
        }

        auto& say = lab.narrate();
        auto& see = lab.observer();
        // One kernel plays both parts: the scanner knocks from the same loopback address
        // the target's sockets listen on.
        const auto& target_host = see.declare({"target", {*target}, "server"});
        see.declare({"scanner", {*target}, "scanner"});
        json facts = {{"lab", lab.name()}, {"target", target->to_string()}, {"ports_source", ports_source},
                      {"concurrency", concurrency}, {"timeout_ms", timeout_ms}, {"udp_retries", retries},
                      {"services_source", services.source()}};
        say.title("Lab 08: a port scanner on " + target->to_string());

        // --- 1. Something to find: the lab's own sockets --------------------------------
        std::optional<DemoSockets> demo_sockets;
        DemoPorts demo;
        std::vector<labkit::SocketRef> demo_refs;
        if (!no_demo) {
            say.step("open this lab's own sockets on " + target->to_string() + ", ports chosen by the kernel");
            demo_sockets.emplace(*target);
            demo = {demo_sockets->tcp_listener(), demo_sockets->udp_answering(), demo_sockets->udp_silent()};
            say.kernel(fmt::format("TCP {} listening (the kernel itself answers SYNs with SYN-ACK)", demo.tcp_listener));
            say.kernel(fmt::format("UDP {} bound, and a thread answers every datagram", demo.udp_answering));
            say.kernel(fmt::format("UDP {} bound, but nobody ever answers", demo.udp_silent));
            say.see_it_yourself(fmt::format("ss -tulnp 'sport = :{} or sport = :{} or sport = :{}'", demo.tcp_listener,
                                            demo.udp_answering, demo.udp_silent));
            demo_refs = record_demo_sockets(see, target_host, *target, demo);
            facts["demo"] = {{"tcp_listener", demo.tcp_listener}, {"udp_answering", demo.udp_answering},
                             {"udp_silent", demo.udp_silent}};
        } else {
            facts["demo"] = nullptr;
        }

        scanner::ScanOptions options;
        options.target = *target;
        options.concurrency = concurrency;
        options.timeout = std::chrono::milliseconds(timeout_ms);
        options.udp_retries = retries;
        if (!no_progress && !lab.json() && ::isatty(STDERR_FILENO) == 1) options.progress = draw_progress;
        record_scan_in_trace(see, *target, options);

        facts["scans"] = json::array();
        const auto run_one = [&](Protocol protocol) -> std::optional<int> {
            auto list = ports;
            // The lab's own ports are always scanned, so there is something to find.
            const std::vector<Port> own = protocol == Protocol::tcp ? std::vector<Port>{demo.tcp_listener}
                                                                    : std::vector<Port>{demo.udp_answering, demo.udp_silent};
            if (!no_demo)
                for (const Port port : own)
                    if (std::find(list.begin(), list.end(), port) == list.end()) list.push_back(port);
            options.protocol = protocol;
            if (protocol == Protocol::tcp) {
                say.step(fmt::format("TCP connect scan of {}: connect() to each port ({} at most waiting at once)",
                                     describe_ports(list), concurrency));
                say.note("SYN-ACK -> connect() succeeds: open.  RST -> ECONNREFUSED: closed.  Silence -> filtered.");
                say.see_it_yourself(fmt::format("nmap -sT --reason -p {} {}", scanner::compress_ranges(list).size() <= 200
                                                    ? scanner::compress_ranges(list) : std::string("-"),
                                                target->to_string()));
            } else {
                say.step(fmt::format("UDP scan of {}: one empty datagram to each port, again once more after {} ms of silence",
                                     describe_ports(list), timeout_ms));
                say.note("A reply -> open.  ICMP port unreachable (ECONNREFUSED) -> closed.  Silence -> open|filtered.");
                say.see_it_yourself(fmt::format("sudo nmap -sU --reason -p {} {}", scanner::compress_ranges(list).size() <= 200
                                                    ? scanner::compress_ranges(list) : std::string("-"),
                                                target->to_string()));
            }
            const auto report = scanner::run_scan(list, options);
            if (!report) return lab.failure(report.error().message);
            print_table(say, *report, names, demo);
            const double seconds = static_cast<double>(report->elapsed.count()) / 1e6;
            say.kernel(fmt::format("{} in {:.3f} s ({:.0f} ports/s); {} had no answer at once and waited in epoll",
                                   text::counted(list.size(), "port"), seconds,
                                   seconds > 0 ? static_cast<double>(list.size()) / seconds : 0.0,
                                   report->waited));
            if (report->self_connects > 0)
                say.note(fmt::format("{} connect(s) met themselves: the kernel picked the scanned port as the source port, "
                                     "and TCP's simultaneous open connected the socket to itself. Such a port was probed "
                                     "again from another source port, not reported open.",
                                     report->self_connects));
            if (protocol == Protocol::udp)
                say.note("open|filtered means silence: a bound socket that never answers looks just like a firewall that drops.");
            facts["scans"].push_back(report_json(*report, names, demo));
            facts["scans"].back()["port_list"] = scanner::compress_ranges(list);
            return std::nullopt;
        };
        if (scan_tcp)
            if (const auto failed = run_one(Protocol::tcp)) return *failed;
        if (scan_udp)
            if (const auto failed = run_one(Protocol::udp)) return *failed;

        if (veth)
            if (const auto failed = compare_lo_and_veth(lab, ports, options, facts)) return *failed;

        // --- Last: clean up -----------------------------------------------------------
        if (demo_sockets) {
            say.step("close the lab's own sockets");
            demo_sockets.reset();
            for (const auto& ref : demo_refs) see.record(labkit::fact::Closed{ref}, labkit::quietly);
            say.kernel("closed; the scanner's own sockets closed with RST (SO_LINGER 0), so no TIME-WAIT is left");
            say.see_it_yourself("ss -tan state time-wait");
        }
        if (lab.json()) lab.print_json(facts);
        return labkit::exit_ok;
    });
}
