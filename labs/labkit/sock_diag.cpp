// The kernel's socket tables over NETLINK_SOCK_DIAG, and their owners from /proc.
// See sock_diag.hpp for the picture; the kernel side is net/ipv4/inet_diag.c
// (inet_diag_dump_icsk for TCP) and net/ipv4/udp_diag.c (udp_dump).

#include "labkit/sock_diag.hpp"
#include "labkit/labkit.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <memory>
#include <tuple>
#include <unordered_set>

namespace portlab::diag {

namespace {

// include/net/tcp_states.h; <netinet/tcp.h> has the same numbers as an enum.
constexpr std::uint8_t kernel_tcp_established = 1;
constexpr std::uint8_t kernel_tcp_close = 7;
constexpr std::uint8_t kernel_tcp_listen = 10;
// iproute2's ss (misc/ss.c): SS_ALL = (1 << SS_MAX) - 1 with SS_MAX = 12, i.e. every
// state from 0 to TCP_CLOSING; the kernel adds TCP_NEW_SYN_RECV itself when SYN_RECV is
// asked for. ss -l asks for LISTEN and CLOSE (so unconnected UDP shows up as UNCONN).
// Using ss's masks exactly makes our listing and ss's cover the same sockets.
constexpr std::uint32_t ss_all_states = (1u << 12) - 1;
constexpr std::uint32_t ss_listening_states = (1u << kernel_tcp_listen) | (1u << kernel_tcp_close);

// Bounds, so a misbehaving kernel or a huge table cannot hang us.
constexpr int netlink_receive_timeout_seconds = 5;
constexpr std::size_t max_receive_calls = 1'000'000;
constexpr std::size_t max_processes_scanned = 4'000'000;
constexpr std::size_t max_fds_per_process = 16'000'000;

Error errno_error(const std::string& what, int error_number) {
    const std::error_code error(error_number, std::generic_category());
    return fail(what + ": " + labkit::describe_error(error), error);
}

// A netlink socket that closes itself.
struct MnlSocketCloser {
    void operator()(mnl_socket* socket) const noexcept { mnl_socket_close(socket); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlSocketCloser>;

Result<MnlSocket> open_sock_diag_socket() {
    MnlSocket socket(mnl_socket_open(NETLINK_SOCK_DIAG));
    if (!socket) return errno_error("cannot open a NETLINK_SOCK_DIAG socket", errno);
    if (mnl_socket_bind(socket.get(), 0, MNL_SOCKET_AUTOPID) < 0)
        return errno_error("cannot bind the netlink socket", errno);
    // A dump normally ends with NLMSG_DONE; the timeout bounds the wait if it never does.
    const timeval timeout{netlink_receive_timeout_seconds, 0};
    setsockopt(mnl_socket_get_fd(socket.get()), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return socket;
}

struct DumpContext {
    Protocol protocol;
    std::vector<SocketInfo>* out;
    std::optional<Error> error;  // set by the callback on a malformed message
};

int on_inet_diag_message(const nlmsghdr* header, void* data) {
    auto* context = static_cast<DumpContext*>(data);
    const auto* payload = static_cast<const std::uint8_t*>(mnl_nlmsg_get_payload(header));
    auto parsed = parse_inet_diag_msg({payload, mnl_nlmsg_get_payload_len(header)}, context->protocol);
    if (!parsed) {
        context->error = parsed.error();
        return MNL_CB_ERROR;
    }
    context->out->push_back(std::move(*parsed));
    return MNL_CB_OK;
}

// mnl_cb_run stops quietly at a message whose length runs past the data it was given;
// we want that to be an error, so walk the headers first. A last message whose length
// is not padded to NLMSG_ALIGNTO leaves `remaining` at or below zero, which is fine.
bool holds_whole_messages(const void* data, ssize_t size) {
    int remaining = static_cast<int>(size);
    const auto* header = static_cast<const nlmsghdr*>(data);
    while (mnl_nlmsg_ok(header, remaining)) header = mnl_nlmsg_next(header, &remaining);
    return remaining <= 0;
}

// One SOCK_DIAG_BY_FAMILY dump request (linux/inet_diag.h, inet_diag_req_v2) for one
// protocol and one address family, answered by a stream of inet_diag_msg ending in
// NLMSG_DONE.
Result<void> dump_table(mnl_socket* socket, Protocol protocol, IpFamily family, std::uint32_t states,
                        std::optional<Port> port, unsigned sequence, std::vector<SocketInfo>& out) {
    std::array<std::uint8_t, 1024> request_buffer{};
    nlmsghdr* header = mnl_nlmsg_put_header(request_buffer.data());
    header->nlmsg_type = SOCK_DIAG_BY_FAMILY;
    header->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    header->nlmsg_seq = sequence;
    auto* request = static_cast<inet_diag_req_v2*>(mnl_nlmsg_put_extra_header(header, sizeof(inet_diag_req_v2)));
    request->sdiag_family = family == IpFamily::v4 ? AF_INET : AF_INET6;
    request->sdiag_protocol = protocol == Protocol::tcp ? IPPROTO_TCP : IPPROTO_UDP;
    request->idiag_states = states;
    // Both dumpers skip sockets whose local port differs from a non-zero id.idiag_sport
    // (inet_diag_dump_icsk and udp_dump), so the kernel filters by port for us.
    if (port) request->id.idiag_sport = htons(*port);

    if (mnl_socket_sendto(socket, header, header->nlmsg_len) < 0)
        return errno_error("cannot send the sock_diag request", errno);

    // 32 KiB: the kernel fills dump skbs up to about that size (netlink_dump), so a
    // smaller buffer would truncate messages; bigger costs nothing.
    std::vector<std::uint8_t> buffer(std::size_t{64} << 10);
    const unsigned port_id = mnl_socket_get_portid(socket);
    DumpContext context{protocol, &out, std::nullopt};
    for (std::size_t calls = 0; calls < max_receive_calls; ++calls) {
        const ssize_t received = mnl_socket_recvfrom(socket, buffer.data(), buffer.size());
        if (received < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return fail("the kernel did not finish the sock_diag dump within " +
                            std::to_string(netlink_receive_timeout_seconds) + " s");
            return errno_error("cannot read the sock_diag answer", errno);
        }
        if (!holds_whole_messages(buffer.data(), received))
            return fail("truncated netlink message in the " + std::string(to_string(protocol)) + " dump");
        const int status = mnl_cb_run(buffer.data(), static_cast<std::size_t>(received), sequence, port_id,
                                      on_inet_diag_message, &context);
        if (context.error) return *context.error;
        if (status == MNL_CB_STOP) return {};  // NLMSG_DONE
        if (status < 0) {
            const int error_number = errno;
            const std::string what = std::string("the kernel refused the ") + std::string(to_string(protocol)) +
                                     (family == IpFamily::v4 ? "/IPv4" : "/IPv6") + " socket dump";
            // ENOENT: no handler for this family/protocol (tcp_diag or udp_diag not loaded).
            if (error_number == ENOENT) return errno_error(what + " (is the udp_diag/tcp_diag module missing?)", error_number);
            if (error_number == ESRCH || error_number == EPROTO)
                return errno_error("malformed netlink answer in the " + std::string(to_string(protocol)) + " dump",
                                   error_number);
            return errno_error(what, error_number);
        }
    }
    return fail("the sock_diag dump did not end after " + std::to_string(max_receive_calls) + " reads");
}

bool wanted(const SocketInfo& socket, const Query& query) {
    if (query.port && socket.local.port != *query.port) return false;
    if (query.listening_only && !socket.is_listening()) return false;
    return true;
}

// A directory stream that closes itself.
struct DirCloser {
    void operator()(DIR* dir) const noexcept { closedir(dir); }
};
using Dir = std::unique_ptr<DIR, DirCloser>;

std::optional<int> parse_decimal(std::string_view text) {
    int value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < 0) return std::nullopt;
    return value;
}

// /proc/PID/comm without its newline; "?" if it vanished meanwhile.
std::string read_comm(int proc_fd, const std::string& pid_text) {
    const int fd = openat(proc_fd, (pid_text + "/comm").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "?";
    std::array<char, 64> text{};
    const ssize_t count = read(fd, text.data(), text.size() - 1);
    close(fd);
    if (count <= 0) return "?";
    std::string name(text.data(), static_cast<std::size_t>(count));
    while (!name.empty() && name.back() == '\n') name.pop_back();
    return name;
}

// Walks /proc/PID/fd/* for every process we may read and calls keep(inode) to decide
// whether to record each socket found. Unreadable processes are skipped (EACCES
// without root; ESRCH/ENOENT for ones that exited during the walk), as ss does.
template <class Keep>
Result<std::unordered_map<std::uint32_t, std::vector<ProcessRef>>> scan_proc(Keep keep) {
    std::unordered_map<std::uint32_t, std::vector<ProcessRef>> owners;
    const Dir proc(opendir("/proc"));
    if (!proc) return errno_error("cannot read /proc", errno);
    const int proc_fd = dirfd(proc.get());
    std::size_t processes = 0;
    while (const dirent* entry = readdir(proc.get())) {
        const auto pid = parse_decimal(entry->d_name);
        if (!pid) continue;  // "self", "net", "sys", ...
        if (++processes > max_processes_scanned) break;
        const std::string pid_text = entry->d_name;
        const int fd_dir_fd = openat(proc_fd, (pid_text + "/fd").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd_dir_fd < 0) continue;
        const Dir fd_dir(fdopendir(fd_dir_fd));
        if (!fd_dir) {
            close(fd_dir_fd);
            continue;
        }
        std::string comm;  // read once, only if this process holds a socket we keep
        std::size_t fds = 0;
        std::array<char, 64> link{};
        while (const dirent* fd_entry = readdir(fd_dir.get())) {
            if (++fds > max_fds_per_process) break;
            const auto fd_number = parse_decimal(fd_entry->d_name);
            if (!fd_number) continue;  // "." and ".."
            const ssize_t length = readlinkat(fd_dir_fd, fd_entry->d_name, link.data(), link.size());
            if (length <= 0 || static_cast<std::size_t>(length) >= link.size()) continue;
            const auto inode = socket_inode_from_link({link.data(), static_cast<std::size_t>(length)});
            if (!inode || !keep(*inode)) continue;
            if (comm.empty()) comm = read_comm(proc_fd, pid_text);
            owners[*inode].push_back(ProcessRef{*pid, comm, *fd_number});
        }
    }
    return owners;
}

}  // namespace

// --- SocketInfo ------------------------------------------------------------------------

std::optional<TcpState> SocketInfo::tcp_state() const {
    if (protocol != Protocol::tcp) return std::nullopt;
    const auto state = from_linux_tcp_state(kernel_state);
    if (!state) return std::nullopt;
    return *state;
}

std::string SocketInfo::state_name() const { return std::string(portlab::ss_state_name(kernel_state)); }

bool SocketInfo::is_listening() const noexcept {
    return protocol == Protocol::tcp ? kernel_state == kernel_tcp_listen : kernel_state == kernel_tcp_close;
}

// --- Parsing ---------------------------------------------------------------------------

Result<SocketInfo> parse_inet_diag_msg(std::span<const std::uint8_t> payload, Protocol protocol) {
    if (payload.size() < sizeof(inet_diag_msg))
        return fail("inet_diag_msg too short: " + std::to_string(payload.size()) + " bytes, need " +
                    std::to_string(sizeof(inet_diag_msg)));
    inet_diag_msg message{};
    std::memcpy(&message, payload.data(), sizeof message);  // the payload need not be aligned for us
    if (message.idiag_family != AF_INET && message.idiag_family != AF_INET6)
        return fail("inet_diag_msg with address family " + std::to_string(message.idiag_family) +
                    " (expected AF_INET or AF_INET6)");

    SocketInfo info;
    info.protocol = protocol;
    info.family = message.idiag_family == AF_INET ? IpFamily::v4 : IpFamily::v6;
    const std::size_t address_size = info.family == IpFamily::v4 ? 4 : 16;
    // idiag_src/idiag_dst are __be32[4]: the address's network-order bytes, IPv4 in the first 4.
    std::array<std::uint8_t, 16> source{};
    std::array<std::uint8_t, 16> destination{};
    std::memcpy(source.data(), message.id.idiag_src, sizeof source);
    std::memcpy(destination.data(), message.id.idiag_dst, sizeof destination);
    auto local_address = IpAddress::from_bytes({source.data(), address_size});
    auto remote_address = IpAddress::from_bytes({destination.data(), address_size});
    if (!local_address) return local_address.error();
    if (!remote_address) return remote_address.error();
    info.local = Endpoint{*local_address, ntohs(message.id.idiag_sport)};
    info.remote = Endpoint{*remote_address, ntohs(message.id.idiag_dport)};
    info.kernel_state = message.idiag_state;
    info.inode = message.idiag_inode;
    info.uid = message.idiag_uid;
    info.recv_q = message.idiag_rqueue;
    info.send_q = message.idiag_wqueue;
    // Netlink attributes follow the message, each 4-byte aligned (linux/netlink.h); only
    // INET_DIAG_SKV6ONLY is read. A cut attribute ends the walk: the message itself is whole.
    std::size_t offset = NLMSG_ALIGN(sizeof(inet_diag_msg));
    while (offset + NLA_HDRLEN <= payload.size()) {
        nlattr attribute{};
        std::memcpy(&attribute, payload.data() + offset, sizeof attribute);
        if (attribute.nla_len < NLA_HDRLEN || offset + attribute.nla_len > payload.size()) break;
        if ((attribute.nla_type & NLA_TYPE_MASK) == INET_DIAG_SKV6ONLY && attribute.nla_len > NLA_HDRLEN)
            info.v6only = payload[offset + NLA_HDRLEN] != 0;
        offset += NLA_ALIGN(attribute.nla_len);
    }
    return info;
}

std::string SocketInfo::peer_text() const {
    if (remote.port != 0) return remote.to_string();
    return (remote.address.is_v6() ? "[" + remote.address.to_string() + "]" : remote.address.to_string()) + ":*";
}

std::optional<std::uint32_t> socket_inode_from_link(std::string_view link_target) {
    constexpr std::string_view prefix = "socket:[";
    if (link_target.size() < prefix.size() + 2 || !link_target.starts_with(prefix) || link_target.back() != ']')
        return std::nullopt;
    const auto digits = link_target.substr(prefix.size(), link_target.size() - prefix.size() - 1);
    std::uint32_t inode = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), inode);
    if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
    return inode;
}

// --- The two queries -------------------------------------------------------------------

Result<std::unordered_map<std::uint32_t, std::vector<ProcessRef>>> map_socket_inodes_to_processes() {
    return scan_proc([](std::uint32_t) { return true; });
}

Result<std::vector<SocketInfo>> list_sockets(const Query& query) {
    auto socket = open_sock_diag_socket();
    if (!socket) return socket.error();

    const std::uint32_t states = query.listening_only ? ss_listening_states : ss_all_states;
    std::vector<SocketInfo> sockets;
    auto sequence = static_cast<unsigned>(std::time(nullptr));
    for (const auto protocol : {Protocol::tcp, Protocol::udp}) {
        if ((protocol == Protocol::tcp && !query.tcp) || (protocol == Protocol::udp && !query.udp)) continue;
        for (const auto family : {IpFamily::v4, IpFamily::v6}) {
            if ((family == IpFamily::v4 && !query.ipv4) || (family == IpFamily::v6 && !query.ipv6)) continue;
            auto dumped = dump_table(socket->get(), protocol, family, states, query.port, ++sequence, sockets);
            if (!dumped) return dumped.error();
        }
    }
    // The state mask for TCP also lets TCP_CLOSE through; the port filter is the
    // kernel's, checked again here so the contract does not depend on kernel details.
    std::erase_if(sockets, [&](const SocketInfo& s) { return !wanted(s, query); });

    if (query.with_processes) {
        std::unordered_set<std::uint32_t> inodes;
        for (const auto& s : sockets)
            if (s.inode != 0) inodes.insert(s.inode);
        auto owners = scan_proc([&](std::uint32_t inode) { return inodes.contains(inode); });
        if (!owners) return owners.error();
        for (auto& s : sockets) {
            if (s.inode == 0) continue;
            if (const auto found = owners->find(s.inode); found != owners->end()) {
                s.owners = found->second;
                std::sort(s.owners.begin(), s.owners.end(),
                          [](const ProcessRef& a, const ProcessRef& b) {
                              return std::tie(a.pid, a.fd) < std::tie(b.pid, b.fd);
                          });
            }
        }
    }

    std::sort(sockets.begin(), sockets.end(), [](const SocketInfo& a, const SocketInfo& b) {
        return std::tie(a.protocol, a.family, a.local, a.remote, a.inode) <
               std::tie(b.protocol, b.family, b.local, b.remote, b.inode);
    });
    return sockets;
}

}  // namespace portlab::diag
