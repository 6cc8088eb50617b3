// The hub's scan vocabulary (portlab/scan.hpp) against two judges:
//  - nmap's documented definitions (nmap.org/book/man-port-scanning-basics.html, the
//    scan-methods chapters, and the reasons of nmap's portreasons.cc), as a table;
//  - nmap itself: on 127.0.0.1 the test opens a listener, a closed port, a UDP socket that
//    answers, one that stays silent and a UDP port nobody holds, asks nmap -sT / -sU
//    --reason for their states, and checks that classify() gives the same for the answer
//    the kernel gives the test's own sockets.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "portlab/scan.hpp"
#include "support.hpp"

using namespace portlab;
using namespace portlab::scan;
using portlab::test::run_command;
using portlab::test::tool_available;
using portlab::test::sockets::Fd;
using portlab::test::sockets::local_port;
using portlab::test::sockets::loopback;

namespace {

std::string text_of(const std::optional<Verdict>& verdict) {
    if (!verdict) return "(ignored)";
    return std::string(to_string(verdict->state)) + " " + std::string(to_string(verdict->reason));
}

std::string describe(const Answer& answer) {
    switch (answer.kind) {
        case AnswerKind::syn_ack: return "SYN-ACK";
        case AnswerKind::reset: return "RST";
        case AnswerKind::udp_reply: return "a UDP reply";
        case AnswerKind::icmp_unreachable:
            return std::string(answer.icmp.family == IpFamily::v4 ? "ICMP 3/" : "ICMPv6 1/") + std::to_string(answer.icmp.code);
        case AnswerKind::nothing: return "nothing";
        case AnswerKind::socket_error: return "errno " + portlab::test::sockets::errno_name(answer.error);
        case AnswerKind::self_connect: return "a self-connect";
        case AnswerKind::local_error: return "a local error";
    }
    return "?";
}

Answer icmp4(std::uint8_t code) { return Answer::unreachable({IpFamily::v4, code}); }
Answer icmp6(std::uint8_t code) { return Answer::unreachable({IpFamily::v6, code}); }

}  // namespace

TEST_CASE("every scan type turns each answer into the state and reason nmap defines", "[scan]") {
    using S = PortState;
    using R = Reason;
    using T = ScanType;
    const auto [type, answer, state, reason] = GENERATE(table<ScanType, Answer, PortState, Reason>({
        // SYN scan (-sS): "SYN/ACK indicates the port is listening (open), while a RST
        // (reset) is indicative of a non-listener. If no response is received after several
        // retransmissions, the port is marked as filtered. The port is also marked filtered
        // if an ICMP unreachable error (type 3, code 0, 1, 2, 3, 9, 10, or 13) is received."
        {T::syn, Answer::syn_ack(), S::open, R::syn_ack},
        {T::syn, Answer::reset(), S::closed, R::reset},
        {T::syn, Answer::nothing(), S::filtered, R::no_response},
        {T::syn, icmp4(0), S::filtered, R::net_unreach},
        {T::syn, icmp4(1), S::filtered, R::host_unreach},
        {T::syn, icmp4(2), S::filtered, R::proto_unreach},
        {T::syn, icmp4(3), S::filtered, R::port_unreach},
        {T::syn, icmp4(9), S::filtered, R::net_prohibited},
        {T::syn, icmp4(10), S::filtered, R::host_prohibited},
        {T::syn, icmp4(13), S::filtered, R::admin_prohibited},
        {T::syn, icmp6(1), S::filtered, R::admin_prohibited},
        {T::syn, icmp6(4), S::filtered, R::port_unreach},
        // ACK scan (-sA): "open and closed ports will both return a RST packet. Nmap then
        // labels them as unfiltered ... Ports that don't respond, or send certain ICMP error
        // messages back (type 3, code 0, 1, 2, 3, 9, 10, or 13), are labeled filtered."
        {T::ack, Answer::reset(), S::unfiltered, R::reset},
        {T::ack, Answer::nothing(), S::filtered, R::no_response},
        {T::ack, icmp4(3), S::filtered, R::port_unreach},
        {T::ack, icmp4(13), S::filtered, R::admin_prohibited},
        // UDP scan (-sU): "If an ICMP port unreachable error (type 3, code 3) is returned,
        // the port is closed. Other ICMP unreachable errors (type 3, codes 0, 1, 2, 9, 10, or
        // 13) mark the port as filtered. Occasionally, a service will respond with a UDP
        // packet, proving that it is open. If no response is received after
        // retransmissions, the port is classified as open|filtered."
        {T::udp, Answer::udp_reply(), S::open, R::udp_response},
        {T::udp, icmp4(3), S::closed, R::port_unreach},
        {T::udp, icmp6(4), S::closed, R::port_unreach},
        {T::udp, icmp4(0), S::filtered, R::net_unreach},
        {T::udp, icmp4(1), S::filtered, R::host_unreach},
        {T::udp, icmp4(2), S::filtered, R::proto_unreach},
        {T::udp, icmp4(9), S::filtered, R::net_prohibited},
        {T::udp, icmp4(10), S::filtered, R::host_prohibited},
        {T::udp, icmp4(13), S::filtered, R::admin_prohibited},
        {T::udp, Answer::nothing(), S::open_filtered, R::no_response},
        // ... and through a connected UDP socket, the kernel's errno for those ICMP errors.
        {T::udp, Answer::socket_error(ECONNREFUSED), S::closed, R::port_unreach},
        {T::udp, Answer::socket_error(EHOSTUNREACH), S::filtered, R::host_unreach},
        // Connect scan (-sT): "Nmap asks the underlying operating system to establish a
        // connection with the target machine and port by issuing the connect system call."
        // nmap's handleConnectResult: 0 open syn-ack, ECONNREFUSED closed conn-refused,
        // EHOSTUNREACH / ENETUNREACH / EACCES / ENOPROTOOPT filtered, ETIMEDOUT no-response.
        {T::connect, Answer::socket_error(0), S::open, R::syn_ack},
        {T::connect, Answer::socket_error(ECONNREFUSED), S::closed, R::conn_refused},
        {T::connect, Answer::socket_error(ETIMEDOUT), S::filtered, R::no_response},
        {T::connect, Answer::socket_error(EHOSTUNREACH), S::filtered, R::host_unreach},
        {T::connect, Answer::socket_error(ENETUNREACH), S::filtered, R::net_unreach},
        {T::connect, Answer::socket_error(EACCES), S::filtered, R::admin_prohibited},
        {T::connect, Answer::socket_error(ENOPROTOOPT), S::filtered, R::proto_unreach},
        {T::connect, Answer::nothing(), S::filtered, R::no_response},
        // A connect scan reads packets through the kernel (tcp_v4_err, icmp_err_convert):
        // SYN-ACK completes connect(), RST refuses it, port unreachable is a hard
        // ECONNREFUSED, admin-prohibited a hard EHOSTUNREACH, host unreachable only soft.
        {T::connect, Answer::syn_ack(), S::open, R::syn_ack},
        {T::connect, Answer::reset(), S::closed, R::conn_refused},
        {T::connect, icmp4(3), S::closed, R::conn_refused},
        {T::connect, icmp4(13), S::filtered, R::host_unreach},
        {T::connect, icmp4(10), S::filtered, R::host_unreach},
        {T::connect, icmp4(9), S::filtered, R::net_unreach},
        {T::connect, icmp4(2), S::filtered, R::proto_unreach},
        {T::connect, icmp4(1), S::filtered, R::no_response},
        {T::connect, icmp4(0), S::filtered, R::no_response},
        {T::connect, icmp6(1), S::filtered, R::admin_prohibited},
        {T::connect, icmp6(4), S::closed, R::conn_refused},
        {T::connect, icmp6(3), S::filtered, R::no_response},
        // portlab's own: a probe that met itself says nothing about the port.
        {T::connect, Answer::self_connect(), S::closed, R::self_connect},
        {T::udp, Answer::self_connect(), S::closed, R::self_connect},
        {T::connect, Answer::local_error(EMFILE), S::filtered, R::local_error},
        {T::connect, Answer::socket_error(EMFILE), S::filtered, R::local_error},
    }));
    CAPTURE(to_string(type), describe(answer));
    const std::string want = std::string(to_string(state)) + " " + std::string(to_string(reason));
    CHECK(text_of(classify(type, answer)) == want);
}

TEST_CASE("answers a scan type cannot get are ignored, as nmap ignores them", "[scan]") {
    const auto [type, answer] = GENERATE(table<ScanType, Answer>({
        {ScanType::ack, Answer::syn_ack()},
        {ScanType::udp, Answer::syn_ack()},
        {ScanType::udp, Answer::reset()},
        {ScanType::syn, Answer::udp_reply()},
        {ScanType::connect, Answer::udp_reply()},
        {ScanType::syn, Answer::socket_error(ECONNREFUSED)},
        {ScanType::ack, Answer::socket_error(0)},
        {ScanType::udp, Answer::socket_error(0)},
    }));
    CAPTURE(to_string(type), describe(answer));
    CHECK_FALSE(classify(type, answer).has_value());
}

TEST_CASE("ICMP errors become the errno Linux's icmp_err_convert gives, hard or soft", "[scan][icmp]") {
    const auto [icmp, error, fatal] = GENERATE(table<IcmpUnreachable, int, bool>({
        {{IpFamily::v4, icmp_v4::net_unreachable}, ENETUNREACH, false},
        {{IpFamily::v4, icmp_v4::host_unreachable}, EHOSTUNREACH, false},
        {{IpFamily::v4, icmp_v4::protocol_unreachable}, ENOPROTOOPT, true},
        {{IpFamily::v4, icmp_v4::port_unreachable}, ECONNREFUSED, true},
        {{IpFamily::v4, icmp_v4::net_prohibited}, ENETUNREACH, true},
        {{IpFamily::v4, icmp_v4::host_prohibited}, EHOSTUNREACH, true},
        {{IpFamily::v4, icmp_v4::admin_prohibited}, EHOSTUNREACH, true},
        {{IpFamily::v6, icmp_v6::no_route}, ENETUNREACH, false},
        {{IpFamily::v6, icmp_v6::admin_prohibited}, EACCES, true},
        {{IpFamily::v6, icmp_v6::address_unreachable}, EHOSTUNREACH, false},
        {{IpFamily::v6, icmp_v6::port_unreachable}, ECONNREFUSED, true},
        {{IpFamily::v6, icmp_v6::reject_route}, EACCES, true},
    }));
    CAPTURE(icmp.family == IpFamily::v4 ? "v4" : "v6", int(icmp.code));
    CHECK(kernel_error(icmp) == KernelIcmpError{error, fatal});
}

TEST_CASE("nft's icmpx reject types are the codes nft_reject sends in each family", "[scan][icmp]") {
    CHECK(icmpx_unreachable(IcmpxType::port_unreachable, IpFamily::v4) == IcmpUnreachable{IpFamily::v4, 3});
    CHECK(icmpx_unreachable(IcmpxType::port_unreachable, IpFamily::v6) == IcmpUnreachable{IpFamily::v6, 4});
    CHECK(icmpx_unreachable(IcmpxType::admin_prohibited, IpFamily::v4) == IcmpUnreachable{IpFamily::v4, 13});
    CHECK(icmpx_unreachable(IcmpxType::admin_prohibited, IpFamily::v6) == IcmpUnreachable{IpFamily::v6, 1});
    CHECK(icmpx_unreachable(IcmpxType::host_unreachable, IpFamily::v4) == IcmpUnreachable{IpFamily::v4, 1});
    CHECK(icmpx_unreachable(IcmpxType::host_unreachable, IpFamily::v6) == IcmpUnreachable{IpFamily::v6, 3});
    for (const auto type : {IcmpxType::port_unreachable, IcmpxType::host_unreachable, IcmpxType::admin_prohibited,
                            IcmpxType::no_route})
        CHECK(*parse_icmpx_type(to_string(type)) == type);
    CHECK_FALSE(parse_icmpx_type("admin"));
}

TEST_CASE("states, reasons and scan types print as nmap prints them and parse back", "[scan]") {
    CHECK(to_string(PortState::open_filtered) == "open|filtered");
    CHECK(to_string(PortState::closed_filtered) == "closed|filtered");
    CHECK(to_string(Reason::conn_refused) == "conn-refused");
    CHECK(to_string(Reason::syn_ack) == "syn-ack");
    CHECK(nmap_option(ScanType::connect) == "-sT");
    CHECK(nmap_option(ScanType::udp) == "-sU");
    for (int i = 0; i <= static_cast<int>(PortState::closed_filtered); ++i)
        CHECK(*parse_port_state(to_string(static_cast<PortState>(i))) == static_cast<PortState>(i));
    for (int i = 0; i <= static_cast<int>(Reason::local_error); ++i)
        CHECK(*parse_reason(to_string(static_cast<Reason>(i))) == static_cast<Reason>(i));
    for (int i = 0; i <= static_cast<int>(ScanType::udp); ++i)
        CHECK(*parse_scan_type(to_string(static_cast<ScanType>(i))) == static_cast<ScanType>(i));
    CHECK_FALSE(parse_port_state("open/filtered"));
    CHECK_FALSE(parse_reason("refused"));
    CHECK_FALSE(parse_scan_type("-sT"));
}

// ---- against nmap itself --------------------------------------------------------------

namespace {

// A socket of the test's on 127.0.0.1, port chosen by the kernel.
struct Bound {
    Fd fd;
    Port port = 0;
    Bound(int type, bool listening) : fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0)) {
        REQUIRE(fd.fd >= 0);
        const auto address = loopback(0);
        REQUIRE(::bind(fd.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
        if (listening) REQUIRE(::listen(fd.fd, 16) == 0);
        port = local_port(fd.fd);
    }
};

// A UDP socket that answers every datagram, for at most 60 s.
class UdpResponder {
public:
    UdpResponder() : socket_(SOCK_DGRAM, false), thread_([this] { serve(); }) {}
    ~UdpResponder() {
        stop_ = true;
        thread_.join();
    }
    UdpResponder(const UdpResponder&) = delete;
    UdpResponder& operator=(const UdpResponder&) = delete;
    [[nodiscard]] Port port() const { return socket_.port; }

private:
    void serve() {
        for (int rounds = 0; !stop_ && rounds < 600; ++rounds) {
            pollfd waiting{socket_.fd.fd, POLLIN, 0};
            if (::poll(&waiting, 1, 100) != 1) continue;
            char buffer[512];
            sockaddr_storage sender{};
            socklen_t length = sizeof sender;
            if (::recvfrom(socket_.fd.fd, buffer, sizeof buffer, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&sender),
                           &length) >= 0)
                ::sendto(socket_.fd.fd, "pong", 4, 0, reinterpret_cast<sockaddr*>(&sender), length);
        }
    }
    Bound socket_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// What the kernel answers a connect() to 127.0.0.1:port within 2 s: connect()'s errno, or nothing.
Answer kernel_connect_answer(Port port) {
    const Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    const auto address = loopback(port);
    if (::connect(fd.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) return Answer::socket_error(0);
    if (errno != EINPROGRESS) return Answer::socket_error(errno);
    pollfd waiting{fd.fd, POLLOUT, 0};
    if (::poll(&waiting, 1, 2000) != 1) return Answer::nothing();
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(fd.fd, SOL_SOCKET, SO_ERROR, &error, &length);
    return Answer::socket_error(error);
}

// What the kernel answers one empty datagram from a connected UDP socket within 1 s: a
// reply, the errno of a queued ICMP error (udp(7)), or nothing.
Answer kernel_udp_answer(Port port) {
    const Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const auto address = loopback(port);
    if (::connect(fd.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 || ::send(fd.fd, "", 0, 0) < 0)
        return Answer::socket_error(errno);
    pollfd waiting{fd.fd, POLLIN, 0};
    if (::poll(&waiting, 1, 1000) != 1) return Answer::nothing();
    char buffer[64];
    if (::recv(fd.fd, buffer, sizeof buffer, MSG_DONTWAIT) >= 0) return Answer::udp_reply();
    return Answer::socket_error(errno);
}

struct NmapPort {
    std::string state;
    std::string reason;
};

// nmap's XML (-oX -), reduced to port -> state and reason.
std::map<Port, NmapPort> nmap_ports(const std::string& xml) {
    std::map<Port, NmapPort> ports;
    const std::regex port_line(R"re(<port protocol="(?:tcp|udp)" portid="(\d+)"><state state="([a-z|]+)" reason="([a-z-]+)")re");
    for (std::sregex_iterator it(xml.begin(), xml.end(), port_line), end; it != end; ++it)
        ports[static_cast<Port>(std::stoi((*it)[1]))] = {(*it)[2], (*it)[3]};
    return ports;
}

std::map<Port, NmapPort> run_nmap(ScanType type, const std::vector<Port>& ports) {
    std::string list;
    for (const Port port : ports) list += (list.empty() ? "" : ",") + std::to_string(port);
    // -n -Pn: no DNS, no host discovery; bounded retries and a host timeout, and timeout(1) around it all.
    const auto run = run_command("nmap -n -Pn " + std::string(nmap_option(type)) +
                                     " --reason --max-retries 2 --host-timeout 60s -p " + list + " 127.0.0.1 -oX -",
                                 90);
    INFO("nmap stderr: " << run.err);
    REQUIRE(run.exit_code == 0);
    return nmap_ports(run.out);
}

void check_against_nmap(ScanType type, const std::map<Port, std::string>& ports,
                        Answer (*kernel_answer)(Port)) {
    std::vector<Port> list;
    for (const auto& [port, what] : ports) list.push_back(port);
    const auto theirs = run_nmap(type, list);
    for (const auto& [port, what] : ports) {
        const Answer answer = kernel_answer(port);
        CAPTURE(port, what, describe(answer));
        REQUIRE(theirs.count(port) == 1);
        const std::string nmap_says = theirs.at(port).state + " " + theirs.at(port).reason;
        CHECK(text_of(classify(type, answer)) == nmap_says);
    }
}

}  // namespace

TEST_CASE("a connect scan: classify() of the kernel's connect() answer is what nmap -sT says", "[scan][nmap]") {
    REQUIRE(tool_available("nmap"));
    const Bound listener(SOCK_STREAM, true);
    const Bound not_listening(SOCK_STREAM, false);  // the kernel answers a SYN here with RST
    check_against_nmap(ScanType::connect,
                       {{listener.port, "a listener"}, {not_listening.port, "bound, not listening"}},
                       kernel_connect_answer);
}

TEST_CASE("a UDP scan: classify() of the kernel's answer to a datagram is what nmap -sU says", "[scan][nmap]") {
    REQUIRE(tool_available("nmap"));
    REQUIRE(geteuid() == 0);  // nmap -sU sends raw packets
    const UdpResponder answering;
    const Bound silent(SOCK_DGRAM, false);
    Port unbound = 0;
    {
        const Bound released(SOCK_DGRAM, false);
        unbound = released.port;
    }
    check_against_nmap(ScanType::udp,
                       {{answering.port(), "a socket that answers"}, {silent.port, "a socket that never answers"},
                        {unbound, "nobody bound"}},
                       kernel_udp_answer);
}
