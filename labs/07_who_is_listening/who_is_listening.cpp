// Lab 07: who is listening? Ask the kernel, as ss does.
//
// No port is probed here. The kernel keeps every TCP and UDP socket in hash tables, and
// hands them out on request over a netlink socket (NETLINK_SOCK_DIAG). The answer names
// each socket's state, its two endpoints and its inode, but not its process: a socket
// belongs to whoever holds a file descriptor for it, so the owner is found by reading
// every /proc/PID/fd/N link ("socket:[INODE]"), the way ss -p and lsof do.
// To have something to find, the lab opens a TCP listener and a UDP socket of its own
// on 127.0.0.1 (port 0: the kernel chooses), and then finds itself in the listing.
//
//   lab07_who_is_listening                 listening sockets, like ss -tulpn
//   lab07_who_is_listening --all           every socket, like ss -tuapn
//   lab07_who_is_listening --port ssh      who owns port 22? like ss -tulpn 'sport = :22'
//   lab07_who_is_listening --tcp -6 --json

#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <asio.hpp>
#include <fmt/format.h>

#include "labkit/labkit.hpp"
#include "labkit/observe.hpp"
#include "labkit/sock_diag.hpp"
#include "portlab/services.hpp"
#include "portlab/text_safety.hpp"

using namespace portlab;
using namespace portlab::labkit;
using nlohmann::json;

namespace {

using namespace portlab::labkit::fact;  // the facts a lab records (labkit/observe.hpp)

// The lab's own two sockets, held open while it looks, with the names the trace gives them.
struct OwnSockets {
    asio::ip::tcp::acceptor acceptor;
    asio::ip::udp::socket udp;
    SocketRef tcp_ref{}, udp_ref{};
    Endpoint tcp_listener{}, udp_socket{};
};

json endpoint_json(const Endpoint& endpoint) {
    json object = json::object();
    object["address"] = endpoint.address.to_string();
    object["port"] = endpoint.port;
    return object;
}

std::string_view family_name(IpFamily family) { return family == IpFamily::v4 ? "ipv4" : "ipv6"; }

// ss -p's spelling: users:(("sshd",pid=612,fd=3)), but without the users:() wrapper.
std::string owners_text(const diag::SocketInfo& socket) {
    std::vector<std::string> parts;
    for (const auto& owner : socket.owners) {
        // Any user can name a process anything (prctl(PR_SET_NAME)): shown escaped.
        const auto name = text::printable(owner.name);
        parts.push_back(owner.fd ? fmt::format("(\"{}\",pid={},fd={})", name, owner.pid, *owner.fd)
                                 : fmt::format("(\"{}\",pid={})", name, owner.pid));
    }
    return fmt::format("{}", fmt::join(parts, ","));
}

std::string service_of(const diag::SocketInfo& socket, const ServiceTable& services) {
    const ServiceEntry* entry = services.find_by_port(socket.local.port, socket.protocol);
    return entry ? entry->name : "";
}

// Filled field by field: nlohmann's initializer lists copy every value once more, which
// shows with 10,000 sockets.
json socket_json(const diag::SocketInfo& socket, const ServiceTable& services) {
    json processes = json::array();
    for (const auto& owner : socket.owners) {
        json process = json::object();
        process["pid"] = owner.pid;
        process["name"] = text::valid_utf8(owner.name);
        process["fd"] = owner.fd ? json(*owner.fd) : json(nullptr);
        processes.push_back(std::move(process));
    }
    const auto tcp_state = socket.tcp_state();
    const auto service = service_of(socket, services);
    json row = json::object();
    row["protocol"] = to_string(socket.protocol);
    row["family"] = family_name(socket.family);
    row["state"] = socket.state_name();
    row["kernel_state"] = socket.kernel_state;
    row["tcp_state"] = tcp_state ? json(to_string(*tcp_state)) : json(nullptr);
    row["local"] = endpoint_json(socket.local);
    row["remote"] = endpoint_json(socket.remote);
    row["recv_q"] = socket.recv_q;
    row["send_q"] = socket.send_q;
    row["inode"] = socket.inode;
    row["uid"] = socket.uid;
    row["service"] = service.empty() ? json(nullptr) : json(text::valid_utf8(service));
    row["processes"] = std::move(processes);
    return row;
}

bool is_ours(const diag::SocketInfo& socket) {
    return std::any_of(socket.owners.begin(), socket.owners.end(),
                       [](const diag::ProcessRef& owner) { return owner.pid == getpid(); });
}

// The table as ss -tulpn prints it, plus a service column and a mark on our own rows.
void print_table(Narrator& say, const std::vector<diag::SocketInfo>& sockets, const ServiceTable& services) {
    say.note(fmt::format("{:<5} {:<10} {:>6} {:>6}  {:<28} {:<28} {:<12} {}", "Netid", "State", "Recv-Q", "Send-Q",
                         "Local Address:Port", "Peer Address:Port", "Service", "Process"));
    for (const auto& s : sockets) {
        const auto service = service_of(s, services);
        say.note(fmt::format("{:<5} {:<10} {:>6} {:>6}  {:<28} {:<28} {:<12} {}{}", to_string(s.protocol),
                             s.state_name(), s.recv_q, s.send_q, s.local.to_string(), s.peer_text(),
                             service.empty() ? "-" : text::printable(service), owners_text(s), is_ours(s) ? "   <- us" : ""));
    }
}

std::string ss_flags(const diag::Query& query) {
    std::string flags = "-";
    if (query.tcp) flags += "t";
    if (query.udp) flags += "u";
    flags += query.listening_only ? "l" : "a";
    flags += "pn";
    if (query.ipv4 != query.ipv6) flags += query.ipv4 ? "4" : "6";
    return flags;
}

const diag::SocketInfo* find_socket(const std::vector<diag::SocketInfo>& sockets, Protocol protocol,
                                    const Endpoint& local) {
    for (const auto& s : sockets)
        if (s.protocol == protocol && s.local == local) return &s;
    return nullptr;
}

// Step 1: a TCP listener and a UDP socket on 127.0.0.1, port 0; each fact told once.
// Returns the exit code when the kernel refused one.
std::optional<int> open_own_sockets(Lab& lab, Observer& see, asio::io_context& io, const Host& here, OwnSockets& own) {
    see.step("open a TCP listener and a UDP socket on 127.0.0.1, port 0 (the kernel chooses)");
    auto opened = open_tcp_listener(see, io, here, {IpAddress::loopback_v4(), 0}, quietly, quietly);
    if (!opened.listener) return lab.failure("cannot open our own TCP listener: " + describe_error(opened.error));
    own.acceptor = std::move(opened.listener->acceptor);
    own.tcp_ref = opened.listener->ref;
    own.tcp_listener = to_endpoint(own.acceptor.local_endpoint());
    asio::error_code error;
    own.udp_ref = see.open(here, Protocol::udp, IpFamily::v4);
    own.udp.open(asio::ip::udp::v4(), error);
    if (!error) own.udp.bind({asio::ip::address_v4::loopback(), 0}, error);
    if (error) {
        see.record(Failed{own.udp_ref, "bind", error}, quietly);
        return lab.failure("cannot open our own UDP socket: " + describe_error(error));
    }
    own.udp_socket = to_endpoint(own.udp.local_endpoint());
    see.record(Bound{own.udp_ref, own.udp_socket, trace::BindHow::bind_zero},
               {fmt::format("TCP {} is listening; UDP {} is bound (no listen() for UDP: bound is enough)",
                            own.tcp_listener.to_string(), own.udp_socket.to_string()),
                {}});
    lab.narrate().see_it_yourself(fmt::format("ss -tlnp 'sport = :{}'   and   ss -ulnp 'sport = :{}'", own.tcp_listener.port,
                                              own.udp_socket.port));
    return std::nullopt;
}

// Step 6: the lab lets its two sockets go.
void close_own_sockets(Observer& see, OwnSockets& own) {
    see.step("close our two sockets");
    close_and_tell(see, own.acceptor, own.tcp_ref);
    close_and_tell(see, own.udp, own.udp_ref);
}

}  // namespace

namespace {

// The sockets -4 would leave out although they take IPv4: listeners (or unconnected UDP
// sockets) on [::] whose IPV6_V6ONLY is off (net.ipv6.bindv6only 0, Linux's default), to
// which an IPv4 peer connects as ::ffff:a.b.c.d.
std::vector<diag::SocketInfo> dual_stack_listeners(diag::Query query) {
    query.ipv4 = false;
    query.ipv6 = true;
    auto v6 = diag::list_sockets(query);
    std::vector<diag::SocketInfo> found;
    if (!v6) return found;
    for (auto& socket : *v6)
        if (socket.local.address.is_unspecified() && socket.v6only == false) found.push_back(std::move(socket));
    return found;
}

// Nothing listens on the port: say whether some socket holds it all the same (a connected
// UDP socket, a TCP connection, TIME-WAIT), as ss -a and lsof show, since bind() to that
// port would still fail with EADDRINUSE.
std::vector<diag::SocketInfo> tell_who_else_holds(Narrator& say, diag::Query query, const ServiceTable& services) {
    const std::string protocols = query.tcp && query.udp ? "TCP or UDP" : (query.tcp ? "TCP" : "UDP");
    query.listening_only = false;
    query.ipv4 = query.ipv6 = true;
    const auto holders = diag::list_sockets(query);
    if (!holders || holders->empty()) {
        say.kernel(fmt::format("nobody: no {} socket has local port {}, in any state", protocols, *query.port));
        return {};
    }
    say.kernel(fmt::format("no {} socket listens on port {}, but {} socket{} hold{} it:", protocols, *query.port,
                           holders->size(), holders->size() == 1 ? "" : "s", holders->size() == 1 ? "s" : ""));
    print_table(say, *holders, services);
    say.note("A connected socket holds its local port as a listener does: bind() to it fails with EADDRINUSE.");
    return *holders;
}

}  // namespace

int main(int argc, char** argv) {
    return run_lab(argc, argv, {"lab07_who_is_listening", "Lab 07: which process owns which port, read from the kernel like ss"},
                   [](Lab& lab) {
        // --- Arguments ----------------------------------------------------------------
        bool all = false, only_tcp = false, only_udp = false, only_v4 = false, only_v6 = false;
        std::string port_text;
        lab.cli().add_flag("-a,--all", all, "every socket in every state (like ss -a), not only listening ones");
        auto* port_option = lab.cli().add_option("-p,--port", port_text, "only sockets whose local port is P: 22, ssh, http/tcp, 53/udp")
            ->type_name("P");
        lab.cli().add_flag("-t,--tcp", only_tcp, "TCP sockets only");
        lab.cli().add_flag("-u,--udp", only_udp, "UDP sockets only");
        lab.cli().add_flag("-4,--ipv4", only_v4, "IPv4 sockets only");
        lab.cli().add_flag("-6,--ipv6", only_v6, "IPv6 sockets only");
        lab.cli().footer("The lab's own listener is on 127.0.0.1, port chosen by the kernel.\n"
                         "Example: lab07_who_is_listening --port ssh");
        lab.parse();

        const auto services = ServiceTable::system_or_fallback();
        diag::Query query;
        query.listening_only = !all;
        query.tcp = only_tcp || !only_udp;
        query.udp = only_udp || !only_tcp;
        query.ipv4 = only_v4 || !only_v6;
        query.ipv6 = only_v6 || !only_v4;
        std::optional<PortSpec> spec;
        if (port_option->count() > 0 && port_text.empty())
            return lab.usage_error("--port: empty port: give 1-65535 or a service name");
        if (!port_text.empty()) {
            auto resolved = resolve_port_spec(port_text, services);
            if (!resolved) return lab.usage_error(resolved.error().message);
            if (resolved->port == 0) return lab.usage_error("port 0 is not a port a socket can hold; give 1-65535");
            if (resolved->protocol) {  // "53/udp" narrows the protocol too
                if ((*resolved->protocol == Protocol::tcp && only_udp) || (*resolved->protocol == Protocol::udp && only_tcp))
                    return lab.usage_error("--port " + port_text + " contradicts --tcp/--udp");
                query.tcp = *resolved->protocol == Protocol::tcp;
                query.udp = *resolved->protocol == Protocol::udp;
            }
            query.port = resolved->port;
            spec = *resolved;
        }

        auto& say = lab.narrate();
        auto& see = lab.observer();
        const int pid = getpid();
        json& facts = see.document();
        facts.update({{"lab", lab.name()}, {"pid", pid}});
        // One host: this machine, whose kernel the lab asks about.
        const Host& here = see.declare({"localhost", {IpAddress::loopback_v4()}, "the machine the lab asks about"});
        say.title("Lab 07: who is listening?");

        // --- 1. Something of our own to find --------------------------------------------
        asio::io_context io;
        OwnSockets own{asio::ip::tcp::acceptor(io), asio::ip::udp::socket(io)};
        if (auto failed = open_own_sockets(lab, see, io, here, own)) return *failed;

        // --- 2. The kernel's socket tables over netlink ---------------------------------
        const std::string what = all ? "every" : "the listening";
        const std::string port_filter = query.port ? fmt::format(" with local port {}", *query.port) : "";
        see.step(fmt::format("ask the kernel for {} {} sockets{} over NETLINK_SOCK_DIAG (SOCK_DIAG_BY_FAMILY), as ss does",
                             what, query.tcp && query.udp ? "TCP and UDP" : (query.tcp ? "TCP" : "UDP"), port_filter));
        auto sockets = diag::list_sockets(query);
        if (!sockets) return lab.failure("cannot read the kernel's socket tables: " + sockets.error().message);
        const auto dual_stack = query.ipv4 && !query.ipv6 ? dual_stack_listeners(query) : std::vector<diag::SocketInfo>{};
        sockets->insert(sockets->end(), dual_stack.begin(), dual_stack.end());
        if (!dual_stack.empty())
            say.note(fmt::format("{} IPv6 socket{} on [::] without IPV6_V6ONLY take{} IPv4 too (dual stack, RFC 3493 "
                                 "section 5.3): listed with the IPv4 ones, though ss -4 leaves them out.",
                                 dual_stack.size(), dual_stack.size() == 1 ? "" : "s", dual_stack.size() == 1 ? "s" : ""));
        std::map<std::string, int> counts;
        for (const auto& s : *sockets) ++counts[fmt::format("{} {}", to_string(s.protocol), s.state_name())];
        std::vector<std::string> count_parts;
        for (const auto& [label, n] : counts) count_parts.push_back(fmt::format("{} {}", n, label));
        say.kernel(fmt::format("{} socket{}{}{}", sockets->size(), sockets->size() == 1 ? "" : "s",
                               count_parts.empty() ? "" : ": ", fmt::join(count_parts, ", ")));
        say.note("One inet_diag_msg per socket: state, local and peer endpoint, queues, uid and inode, but no process.");

        // --- 3. Inodes to processes through /proc --------------------------------------
        see.step("match each socket's inode to the processes holding it: read every /proc/PID/fd/N link, 'socket:[INODE]'");
        std::size_t owned = 0, time_wait = 0;
        for (const auto& s : *sockets) {
            if (!s.owners.empty()) ++owned;
            if (s.inode == 0) ++time_wait;
        }
        say.kernel(fmt::format("{} of {} sockets have an owner we may see", owned, sockets->size()));
        if (time_wait > 0)
            say.note(fmt::format("{} have inode 0: TIME-WAIT leftovers that no process holds any more.", time_wait));
        if (owned + time_wait < sockets->size())
            say.note(geteuid() == 0
                         ? "The rest belong to no process we can see (another PID namespace, or the kernel itself)."
                         : "The rest belong to processes we may not read (other users'): run as root to see them, as with ss -p.");
        say.see_it_yourself(fmt::format("ls -l /proc/{}/fd   (our own descriptors: look for socket:[...])", pid));

        // --- 4. The listing -------------------------------------------------------------
        see.step(query.port ? fmt::format("which process owns port {}{}?", *query.port,
                                          spec && !spec->service_name.empty() ? " (" + spec->service_name + ")" : "")
                            : fmt::format("the listing ({})", all ? "every state" : "listening sockets"));
        if (!lab.json()) print_table(say, *sockets, services);  // quiet anyway; 10,000 rows cost time
        std::vector<diag::SocketInfo> holders;  // with --port, when nothing listens there
        if (query.port && sockets->empty()) holders = tell_who_else_holds(say, query, services);
        if (query.port) {
            say.see_it_yourself(fmt::format("ss {} 'sport = :{}'", ss_flags(query), *query.port));
            say.see_it_yourself(fmt::format("lsof -nP -i {}:{}", query.tcp && query.udp ? "" : (query.tcp ? "TCP" : "UDP"),
                                            *query.port));
        } else {
            say.see_it_yourself("ss " + ss_flags(query));
            say.see_it_yourself(all ? "lsof -nP -i" : "lsof -nP -iTCP -sTCP:LISTEN   and   lsof -nP -iUDP");
        }

        // --- 5. Find ourselves ------------------------------------------------------------
        see.step("find our own two sockets in what the kernel told us");
        const auto* tcp_row = query.tcp && query.ipv4 ? find_socket(*sockets, Protocol::tcp, own.tcp_listener) : nullptr;
        const auto* udp_row = query.udp && query.ipv4 ? find_socket(*sockets, Protocol::udp, own.udp_socket) : nullptr;
        for (const auto* row : {tcp_row, udp_row}) {
            if (row == nullptr) continue;
            const auto us = std::find_if(row->owners.begin(), row->owners.end(),
                                         [&](const diag::ProcessRef& owner) { return owner.pid == pid; });
            if (us != row->owners.end()) {
                say.kernel(fmt::format("{} {} {}: that's us: pid {} ({}), fd {}", to_string(row->protocol), row->state_name(),
                                       row->local.to_string(), pid, text::printable(us->name), us->fd.value_or(-1)));
            } else {
                say.kernel(fmt::format("{} {}: found, but no owner matched our pid {}", to_string(row->protocol),
                                       row->local.to_string(), pid));
            }
        }
        if (tcp_row == nullptr && udp_row == nullptr)
            say.note("Our sockets are not in this listing: the filter (--port, --tcp/--udp, -6) leaves them out.");
        else
            say.note("The process name is /proc/PID/comm: at most 15 characters, which is why ss shows it cut short too.");

        // --- 6. Clean up -------------------------------------------------------------------
        close_own_sockets(see, own);

        if (lab.json()) {
            json rows = json::array();
            for (const auto& s : *sockets) rows.push_back(socket_json(s, services));
            facts["query"] = {{"all", all},
                              {"tcp", query.tcp},
                              {"udp", query.udp},
                              {"ipv4", query.ipv4},
                              {"ipv6", query.ipv6},
                              {"port", query.port ? json(*query.port) : json(nullptr)},
                              {"service", spec && !spec->service_name.empty() ? json(spec->service_name) : json(nullptr)}};
            facts["self"] = {{"pid", pid},
                             {"tcp_listener", endpoint_json(own.tcp_listener)},
                             {"udp_socket", endpoint_json(own.udp_socket)},
                             {"found_tcp", tcp_row != nullptr && is_ours(*tcp_row)},
                             {"found_udp", udp_row != nullptr && is_ours(*udp_row)}};
            facts["services_source"] = services.source();
            facts["sockets"] = std::move(rows);
            json holder_rows = json::array();
            for (const auto& s : holders) holder_rows.push_back(socket_json(s, services));
            facts["holders"] = std::move(holder_rows);
            lab.print_json(facts);
        }
        return exit_ok;
    });
}
