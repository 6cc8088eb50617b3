// One caption per event, from the hub: every event kind gets a sentence that names
// the event's facts (ports, states, errno, the rule, a timer's length), in plain
// English, and portlab-sim's narration and portlab-viz's timeline say the same
// sentence for the same event.
#include <catch2/catch.hpp>

#include <cctype>
#include <set>
#include <string>
#include <vector>

#include "portlab/caption.hpp"
#include "portlab/packet.hpp"
#include "portlab/services.hpp"
#include "portlab/sim/narration.hpp"
#include "portlab/sim/scenarios.hpp"
#include "portlab/sim/simulator.hpp"
#include "portlab/trace.hpp"
#include "replay/state.hpp"

using namespace portlab;

namespace {

IpAddress address(const char* text) { return IpAddress::parse(text).value(); }
Endpoint endpoint(const char* text) { return Endpoint::parse(text).value(); }

const IpHeader client_to_server{address("10.0.0.1"), address("10.0.0.2")};

Bytes tcp(std::uint8_t flags, std::size_t payload = 0) {
    const Bytes data(payload, 0x61);
    return encode_tcp(client_to_server, TcpHeader{40002, 80, 1, 0, flags, 65535, 0, {}}, data).value();
}
Bytes udp(std::size_t payload) {
    const Bytes data(payload, 0x61);
    return encode_udp(client_to_server, UdpHeader{51000, 53}, data).value();
}

struct Case {
    trace::Event event;
    std::vector<std::string> facts;  // words the sentence must contain
};

// One event of every kind (and every packet label, drop cause and timer), with the facts
// its sentence must name.
std::vector<Case> cases() {
    using namespace trace;
    const IpHeader server_to_client{address("10.0.0.2"), address("10.0.0.1")};
    const Bytes unreachable = encode_port_unreachable(server_to_client, udp(2)).value();
    return {
        {{0, "server", HostAdded{{address("10.0.0.2"), address("2001:db8::2")}, "web server"}},
         {"server", "a web server", "10.0.0.2 and 2001:db8::2"}},
        {{0, "scanner", HostAdded{{}, "scanner"}}, {"The scanner joins"}},
        {{1, "server", SocketCreated{SocketId{1}, Protocol::tcp, IpFamily::v4}}, {"a TCP socket", "socket 1", "IPv4"}},
        {{1, "server", SocketCreated{SocketId{2}, Protocol::udp, IpFamily::v6}}, {"a UDP socket", "socket 2", "IPv6"}},
        {{2, "server", Bound{SocketId{1}, endpoint("0.0.0.0:8080"), BindHow::explicit_port, "SO_REUSEADDR set"}},
         {"socket 1", "0.0.0.0:8080", "SO_REUSEADDR set"}},
        {{2, "client", Bound{SocketId{7}, endpoint("10.0.0.1:40002"), BindHow::ephemeral, std::nullopt}},
         {"socket 7", "10.0.0.1:40002", "OS picked"}},
        {{2, "server", Bound{SocketId{2}, endpoint("[::1]:33000"), BindHow::bind_zero, std::nullopt}},
         {"port 0", "socket 2", "[::1]:33000"}},
        {{3, "server", Listening{SocketId{1}, 128}}, {"socket 1", "listening", "backlog 128"}},
        {{4, "client", ConnectStarted{SocketId{7}, endpoint("10.0.0.2:80")}}, {"connect()", "socket 7", "10.0.0.2:80", "(http)"}},
        {{5, "client", EphemeralAssigned{SocketId{7}, 40002, 32768, 60999, "linux-hash-connect", Parity::even}},
         {"socket 7", "40002", "32768-60999", "linux-hash-connect", "even"}},
        {{6, "server", Accepted{SocketId{1}, SocketId{3}, {endpoint("10.0.0.2:80"), endpoint("10.0.0.1:40002")}}},
         {"socket 1", "socket 3", "10.0.0.2:80 -> 10.0.0.1:40002", "port 80"}},
        {{7, "client", StateChanged{SocketId{7}, TcpState::syn_sent, TcpState::established, "SYN+ACK received"}},
         {"socket 7", "SYN-SENT", "ESTABLISHED", "SYN+ACK received"}},
        {{7, "client", StateChanged{SocketId{7}, TcpState::fin_wait_2, TcpState::time_wait, "FIN received", Evidence::observed}},
         {"FIN-WAIT-2", "TIME-WAIT", "observed"}},
        {{7, "client", StateChanged{SocketId{7}, TcpState::closed, TcpState::syn_sent, "connect() returned", Evidence::inferred}},
         {"CLOSED", "SYN-SENT", "inferred", "not observed"}},
        {{8, "client", TimerArmed{SocketId{7}, TimerKind::retransmission, 1000000, 0}},
         {"retransmission timer", "socket 7", "1 s"}},
        {{8, "client", TimerArmed{SocketId{7}, TimerKind::retransmission, 2000000, 1}},
         {"retransmission timer", "2 s", "retransmission 1"}},
        {{8, "client", TimerArmed{SocketId{7}, TimerKind::time_wait, 60000000, 0}}, {"TIME-WAIT timer", "60 s", "port"}},
        {{8, "client", TimerArmed{SocketId{7}, TimerKind::delayed_ack, 40000, 0}}, {"delayed-ACK timer", "40 ms"}},
        {{8, "client", TimerArmed{SocketId{7}, TimerKind::keepalive, 7200000000, 0}}, {"keepalive timer", "7200 s"}},
        {{8, "client", TimerArmed{SocketId{7}, TimerKind::persist, 500, 0}}, {"persist timer", "500 µs"}},
        {{9, "client", TimerFired{SocketId{7}, TimerKind::retransmission}}, {"retransmission timer", "socket 7", "fired", "sent again"}},
        {{9, "client", TimerFired{SocketId{7}, TimerKind::time_wait}}, {"TIME-WAIT timer", "fired", "port is free"}},
        {{9, "client", TimerStopped{SocketId{7}, TimerKind::retransmission}},
         {"stopped", "retransmission timer", "socket 7", "before it fired"}},
        {{10, "client", Packet{PacketKind::sent, tcp(tcp_flag::syn), LinkType::raw, std::nullopt, "client", "server"}},
         {"sent a TCP SYN", "10.0.0.1:40002", "10.0.0.2:80"}},
        {{10, "server", Packet{PacketKind::delivered, tcp(tcp_flag::syn | tcp_flag::ack), LinkType::raw, std::nullopt,
                               std::nullopt, std::nullopt}},
         {"received a TCP SYN-ACK"}},
        {{10, "client", Packet{PacketKind::sent, tcp(tcp_flag::ack | tcp_flag::psh, 5), LinkType::raw, std::nullopt,
                               std::nullopt, std::nullopt}},
         {"a TCP segment", "5 bytes"}},
        {{10, "client", Packet{PacketKind::sent, tcp(tcp_flag::ack), LinkType::raw, std::nullopt, std::nullopt, std::nullopt}},
         {"a TCP ACK"}},
        {{10, "client", Packet{PacketKind::sent, tcp(tcp_flag::fin | tcp_flag::ack), LinkType::raw, std::nullopt,
                               std::nullopt, std::nullopt}},
         {"a TCP FIN"}},
        {{10, "server", Packet{PacketKind::sent, tcp(tcp_flag::rst), LinkType::raw, std::nullopt, std::nullopt, std::nullopt}},
         {"a TCP RST"}},
        {{10, "client", Packet{PacketKind::sent, udp(1), LinkType::raw, std::nullopt, std::nullopt, std::nullopt}},
         {"a UDP datagram", "10.0.0.1:51000", "10.0.0.2:53", "1 byte"}},
        {{10, "server", Packet{PacketKind::sent, unreachable, LinkType::raw, std::nullopt, std::nullopt, std::nullopt}},
         {"an ICMP message", "10.0.0.2", "10.0.0.1", "port unreachable"}},
        {{11, "router", Packet{PacketKind::dropped, tcp(tcp_flag::syn), LinkType::raw, "tcp dport 80 drop", std::nullopt,
                               std::nullopt, DropCause::firewall, "r1"}},
         {"dropped a TCP SYN", "firewall rule r1", "tcp dport 80 drop"}},
        {{11, "router", Packet{PacketKind::dropped, udp(2), LinkType::raw, std::nullopt, std::nullopt, std::nullopt,
                               DropCause::link, std::nullopt}},
         {"A UDP datagram", "was lost on the link", "not stopped by any rule"}},
        {{11, "client", Packet{PacketKind::dropped, tcp(tcp_flag::ack, 5), LinkType::raw, std::nullopt, "client", "server",
                               DropCause::link, std::nullopt}},
         {"A TCP segment", "was lost on the link from the client to the server", "not stopped by any rule"}},
        {{11, "server", Packet{PacketKind::dropped, tcp(tcp_flag::syn), LinkType::raw, std::nullopt, std::nullopt,
                               std::nullopt, DropCause::no_socket, std::nullopt}},
         {"no socket", "port"}},
        {{11, "server", Packet{PacketKind::dropped, tcp(tcp_flag::syn), LinkType::raw, std::nullopt, std::nullopt,
                               std::nullopt, DropCause::checksum, std::nullopt}},
         {"checksum"}},
        {{11, "router", Packet{PacketKind::dropped, tcp(tcp_flag::syn), LinkType::raw, std::nullopt, std::nullopt,
                               std::nullopt, DropCause::no_route, std::nullopt}},
         {"no route"}},
        {{11, "router", Packet{PacketKind::dropped, udp(2), LinkType::raw, "DROP udp dport 53", std::nullopt, std::nullopt}},
         {"dropped a UDP datagram", "DROP udp dport 53"}},
        {{11, "server", Packet{PacketKind::sent, Bytes{0x45, 0x00}, LinkType::raw, std::nullopt, std::nullopt, std::nullopt}},
         {"does not decode"}},
        {{12, "server", CallFailed{SocketId{4}, "bind", "EADDRINUSE", "Address already in use"}},
         {"bind()", "socket 4", "EADDRINUSE", "Address already in use"}},
        {{12, "client", CallFailed{std::nullopt, "getaddrinfo", "EAI_NONAME", "Name or service not known"}},
         {"getaddrinfo()", "EAI_NONAME"}},
        {{13, "client", Closed{SocketId{7}}}, {"closed socket 7"}},
        {{14, "client", Note{"Ports are per protocol."}}, {"Ports are per protocol."}},
        {{15, "server", ChildCreated{SocketId{1}, SocketId{9}, {Endpoint::parse("10.0.0.2:80").value(), Endpoint::parse("10.0.0.1:40002").value()}}},
         {"10.0.0.2:80", "10.0.0.1:40002", "socket 9", "socket 1", "SYN-RECEIVED", "accept()"}},
        {{15, "server", RuleAdded{"r1", drop_port(Protocol::tcp, 22)}}, {"rule r1", "\"tcp dport 22 drop\"", "drops"}},
        {{15, "server", RuleAdded{"r2", reject_port(Protocol::tcp, 23, RejectWith::tcp_reset)}},
         {"rule r2", "reject with tcp reset", "TCP RST"}},
        {{15, "server", RuleAdded{"r3", reject_port(Protocol::udp, 53)}}, {"udp dport 53 reject", "ICMP error"}},
        {{15, "server", RuleRemoved{"r1"}}, {"removed firewall rule r1"}},
        {{16, "scanner", ScanProbe{scan::ScanType::syn, Endpoint::parse("10.0.0.2:22").value(), 1, std::nullopt}},
         {"a SYN scan probe", "-sS", "10.0.0.2:22", "(ssh)", "retransmission 1"}},
        {{16, "scanner", ScanProbe{scan::ScanType::ack, Endpoint::parse("10.0.0.2:80").value(), 0, SocketId{3}}},
         {"an ACK scan probe", "-sA", "10.0.0.2:80"}},
        {{17, "scanner", ScanResult{scan::ScanType::udp, Endpoint::parse("10.0.0.2:53").value(), scan::PortState::open_filtered,
                                    scan::Reason::no_response}},
         {"10.0.0.2", "53/udp", "(domain)", "open|filtered", "no-response", "cannot tell"}},
        {{17, "scanner", ScanResult{scan::ScanType::connect, Endpoint::parse("10.0.0.2:23").value(), scan::PortState::closed,
                                    scan::Reason::conn_refused}},
         {"23/tcp", "is closed (conn-refused)", "nothing listens"}},
        {{18, "router", NatTranslated{NatKind::snat, Protocol::tcp, 1,
                                      Boxed(NatFlows{{endpoint("192.0.2.10:50000"), endpoint("198.51.100.2:80")},
                                                     {endpoint("198.51.100.1:50001"), endpoint("198.51.100.2:80")}})}},
         {"The router", "a TCP connection's source", "masquerade", "192.0.2.10:50000 -> 198.51.100.2:80",
          "198.51.100.1:50001 -> 198.51.100.2:80", "replies"}},
        {{18, "router", NatTranslated{NatKind::dnat, Protocol::udp, 2,
                                      Boxed(NatFlows{{endpoint("198.51.100.2:4000"), endpoint("198.51.100.1:8080")},
                                                     {endpoint("198.51.100.2:4000"), endpoint("192.0.2.80:80")}})}},
         {"a UDP connection's destination", "port forwarding", "192.0.2.80:80"}},
        {{18, "router", Packet{PacketKind::dropped, tcp(tcp_flag::syn), LinkType::raw, std::nullopt, std::nullopt,
                               std::nullopt, DropCause::ttl_exceeded, std::nullopt}},
         {"dropped a TCP SYN", "TTL ran out"}},
        {{18, "router", Packet{PacketKind::dropped, tcp(tcp_flag::syn), LinkType::raw, "forward: ct state new drop", std::nullopt,
                               std::nullopt, DropCause::ct_state, std::nullopt}},
         {"dropped a TCP SYN", "stateful firewall", "ct state new drop"}},
    };
}

}  // namespace

TEST_CASE("every event kind gets a sentence naming its facts", "[caption]") {
    const ServiceTable services = ServiceTable::fallback();
    std::set<std::string_view> kinds;
    for (const auto& [event, facts] : cases()) {
        const std::string sentence = caption(event, &services);
        CAPTURE(trace::to_json_line(event), sentence);
        kinds.insert(trace::type_name(event.body));
        REQUIRE_FALSE(sentence.empty());
        CHECK(sentence.back() == '.');
        CHECK(std::isupper(static_cast<unsigned char>(sentence.front())));
        CHECK(sentence.find('\n') == std::string::npos);
        for (const auto& fact : facts) {
            CAPTURE(fact);
            CHECK(sentence.find(fact) != std::string::npos);
        }
    }
    CHECK(kinds.size() == std::variant_size_v<trace::EventBody>);
}

TEST_CASE("captions use the right article and never say 'a TCP data'", "[caption]") {
    for (const auto& [event, facts] : cases()) {
        const std::string sentence = caption(event, nullptr);
        CAPTURE(sentence);
        for (const char* wrong : {"a TCP data", "a ICMP", "an UDP", "an TCP", "a IPv", "the the", "  "})
            CHECK(sentence.find(wrong) == std::string::npos);
    }
}

TEST_CASE("a packet lost on the link is no host's drop and no firewall's", "[caption]") {
    const trace::Event lost{11, "client", trace::Packet{trace::PacketKind::dropped, tcp(tcp_flag::ack, 5), LinkType::raw,
                                                        std::nullopt, "client", "server", trace::DropCause::link,
                                                        std::nullopt}};
    const std::string sentence = caption(lost, nullptr);
    CAPTURE(sentence);
    for (const char* wrong : {"dropped", "firewall", "The client dropped"}) CHECK(sentence.find(wrong) == std::string::npos);
}

TEST_CASE("host names: a role takes 'the', an address is a host, a name stays as written", "[caption]") {
    const auto closed = [](const char* host) { return caption(trace::Event{1, host, trace::Closed{trace::SocketId{2}}}, nullptr); };
    CHECK(closed("client") == "The client closed socket 2.");
    CHECK(closed("192.0.2.7") == "Host 192.0.2.7 closed socket 2.");
    CHECK(closed("localhost") == "localhost closed socket 2.");
    CHECK(closed("Alice") == "Alice closed socket 2.");
}

TEST_CASE("service names come from the table given, and none without one", "[caption]") {
    const trace::Event connect{1, "client", trace::ConnectStarted{trace::SocketId{3}, endpoint("10.0.0.2:443")}};
    const ServiceTable services = ServiceTable::fallback();
    CHECK(caption(connect, &services) == "The client called connect() on socket 3 to 10.0.0.2:443 (https).");
    CHECK(caption(connect, nullptr) == "The client called connect() on socket 3 to 10.0.0.2:443.");
}

TEST_CASE("portlab-sim's narration and portlab-viz's timeline say the same sentence for the same event", "[caption]") {
    // Every kind of event above, then every event of every simulator scenario.
    std::vector<trace::Event> events;
    for (const auto& c : cases()) events.push_back(c.event);
    for (const auto& info : sim::scenarios()) {
        const auto run = sim::run_scenario(info.name, 1);
        REQUIRE(run);
        events.insert(events.end(), run->events().begin(), run->events().end());
    }
    trace::TraceHeader header;
    header.source = "test";
    header.generator = "test_caption";
    replay::Timeline timeline(header);
    timeline.append(events);
    sim::Narrator narrator;
    for (std::size_t i = 0; i < events.size(); ++i) {
        const auto row = narrator.narrate(events[i]);
        CAPTURE(trace::to_json_line(events[i]));
        CHECK(row.caption == timeline.caption(i));
        CHECK(row.caption == caption(events[i], &timeline.services()));
    }
    CHECK(events.size() > 100);
}

TEST_CASE("a note is left as written: no capital for a program's name", "[caption]") {
    const trace::Event sshd{0, "server", trace::Note{"sshd listens on port 22, but the firewall comes first"}};
    CHECK(caption(sshd, nullptr) == "sshd listens on port 22, but the firewall comes first.");
    const trace::Event nft{0, "server", trace::Note{"nftables evaluates rules in order."}};
    CHECK(caption(nft, nullptr) == "nftables evaluates rules in order.");
    // Sentences the hub writes still start with a capital.
    CHECK(caption({0, "server", trace::Closed{trace::SocketId{1}}}, nullptr) == "The server closed socket 1.");
}

TEST_CASE("times read in the unit that fits, exact to the microsecond", "[caption]") {
    CHECK(duration_text(0) == "0 s");
    CHECK(duration_text(40) == "40 µs");
    CHECK(duration_text(6000) == "6 ms");
    CHECK(duration_text(15250) == "15.25 ms");
    CHECK(duration_text(1000000) == "1 s");
    CHECK(duration_text(60031000) == "60.031 s");  // not "60031.000 ms"
    CHECK(duration_text(60031123) == "60.031123 s");
    CHECK(duration_text(2000000) == "2 s");
}
