// TCP state names and the trace format: what docs/trace-format.md promises is what
// the reader accepts, every event survives a round trip, and a bad line is refused
// with its line number and the reason.
#include <catch2/catch.hpp>

#include <netinet/tcp.h>  // glibc's copy of the kernel's TCP_ESTABLISHED.. numbering
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "portlab/event_log.hpp"
#include "portlab/tcp_state.hpp"
#include "portlab/trace.hpp"
#include "support.hpp"

using namespace portlab;
using test::TempFile;
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------- TCP states

TEST_CASE("TCP states print as RFC 793 section 3.2 names them", "[tcp_state]") {
    auto [state, name] = GENERATE(table<TcpState, std::string>({
        {TcpState::closed, "CLOSED"},          {TcpState::listen, "LISTEN"},
        {TcpState::syn_sent, "SYN-SENT"},      {TcpState::syn_received, "SYN-RECEIVED"},
        {TcpState::established, "ESTABLISHED"}, {TcpState::fin_wait_1, "FIN-WAIT-1"},
        {TcpState::fin_wait_2, "FIN-WAIT-2"},  {TcpState::close_wait, "CLOSE-WAIT"},
        {TcpState::closing, "CLOSING"},        {TcpState::last_ack, "LAST-ACK"},
        {TcpState::time_wait, "TIME-WAIT"},
    }));
    CAPTURE(name);
    CHECK(to_string(state) == name);
    CHECK(parse_tcp_state(name).value() == state);
}

TEST_CASE("TCP state names from ss and netstat parse too", "[tcp_state]") {
    // ss: iproute2 misc/ss.c sstate_name[]; netstat: net-tools netstat.c tcp_state[].
    auto [text, state] = GENERATE(table<std::string, TcpState>({
        {"ESTAB", TcpState::established},      {"SYN-RECV", TcpState::syn_received},
        {"SYN_SENT", TcpState::syn_sent},      {"SYN_RECV", TcpState::syn_received},
        {"FIN_WAIT1", TcpState::fin_wait_1},   {"FIN_WAIT2", TcpState::fin_wait_2},
        {"TIME_WAIT", TcpState::time_wait},    {"CLOSE", TcpState::closed},
        {"CLOSE_WAIT", TcpState::close_wait},  {"LAST_ACK", TcpState::last_ack},
        {"time-wait", TcpState::time_wait},    {"fin-wait-1", TcpState::fin_wait_1},
    }));
    CAPTURE(text);
    const auto parsed = parse_tcp_state(text);
    REQUIRE(parsed);
    CHECK(*parsed == state);
}

TEST_CASE("words that are not TCP states are errors", "[tcp_state]") {
    const auto text = GENERATE(as<std::string>{}, "UNCONN", "", "ESTABLISH", "SYN", "FIN-WAIT-3", "LISTEN ", "open");
    CAPTURE(text);
    const auto parsed = parse_tcp_state(text);
    REQUIRE_FALSE(parsed);
    CHECK_THAT(parsed.error().message, Catch::Contains("TCP state"));
}

TEST_CASE("the kernel's TCP state numbers map to the states they name", "[tcp_state]") {
    // The numbers come from <netinet/tcp.h>, which copies include/net/tcp_states.h.
    auto [number, state] = GENERATE(table<int, TcpState>({
        {TCP_ESTABLISHED, TcpState::established}, {TCP_SYN_SENT, TcpState::syn_sent},
        {TCP_SYN_RECV, TcpState::syn_received},   {TCP_FIN_WAIT1, TcpState::fin_wait_1},
        {TCP_FIN_WAIT2, TcpState::fin_wait_2},    {TCP_TIME_WAIT, TcpState::time_wait},
        {TCP_CLOSE, TcpState::closed},            {TCP_CLOSE_WAIT, TcpState::close_wait},
        {TCP_LAST_ACK, TcpState::last_ack},       {TCP_LISTEN, TcpState::listen},
        {TCP_CLOSING, TcpState::closing},
    }));
    CAPTURE(number);
    CHECK(from_linux_tcp_state(number).value() == state);
}

TEST_CASE("kernel state numbers outside 1..11 are errors", "[tcp_state]") {
    // 12 is TCP_NEW_SYN_RECV, a request socket the kernel never shows as a state.
    const int number = GENERATE(0, 12, 13, -1, 255);
    CAPTURE(number);
    CHECK_FALSE(from_linux_tcp_state(number));
}

// ---------------------------------------------------------------------------- trace

namespace {

const std::string fixtures = PORTLAB_FIXTURES;
const std::string docs_path = fixtures + "/../../docs/trace-format.md";

Endpoint endpoint(const char* text) { return Endpoint::parse(text).value(); }

// One event of every type, optional fields both set and left out.
std::vector<trace::Event> every_kind_of_event() {
    using namespace trace;
    const Bytes syn = {0x45, 0x00, 0x00, 0x28, 0xde, 0xad};  // bytes need not be a packet here
    return {
        {0, "server", SocketCreated{SocketId{1}, Protocol::tcp, IpFamily::v4}},
        {1, "server", SocketCreated{SocketId{2}, Protocol::udp, IpFamily::v6}},
        {2, "server", Bound{SocketId{1}, endpoint("0.0.0.0:8080"), BindHow::explicit_port, "SO_REUSEADDR set"}},
        {3, "server", Bound{SocketId{2}, endpoint("[::1]:0"), BindHow::bind_zero, std::nullopt}},
        {3, "server", Listening{SocketId{1}, 4096}},
        {4, "client", ConnectStarted{SocketId{7}, endpoint("127.0.0.1:8080")}},
        {5, "client", EphemeralAssigned{SocketId{7}, 40002, 32768, 60999, "linux-hash-connect", Parity::even}},
        {5, "client", EphemeralAssigned{SocketId{8}, 65535, 65535, 65535, "sequential", std::nullopt}},
        {6, "server", Accepted{SocketId{1}, SocketId{3}, {endpoint("127.0.0.1:8080"), endpoint("127.0.0.1:40002")}}},
        {7, "client", StateChanged{SocketId{7}, TcpState::syn_sent, TcpState::established, "SYN+ACK received"}},
        {7, "client", StateChanged{SocketId{7}, TcpState::established, TcpState::fin_wait_1, "sock_diag", Evidence::observed}},
        {7, "client", StateChanged{SocketId{7}, TcpState::closed, TcpState::syn_sent, "connect() returned", Evidence::inferred}},
        {8, "client", Packet{PacketKind::sent, syn, LinkType::raw, std::nullopt, "client", "server"}},
        {8, "router", Packet{PacketKind::dropped, syn, LinkType::en10mb, "DROP tcp dport 8080", std::nullopt, std::nullopt}},
        {8, "router", Packet{PacketKind::dropped, syn, LinkType::raw, "tcp dport 8080 drop", "client", "server",
                             DropCause::firewall, "fw-1"}},
        {8, "router", Packet{PacketKind::dropped, syn, LinkType::raw, std::nullopt, std::nullopt, std::nullopt,
                             DropCause::link, std::nullopt}},
        {8, "server", Packet{PacketKind::dropped, syn, LinkType::raw, "no socket", std::nullopt, std::nullopt,
                             DropCause::no_socket, std::nullopt}},
        {9, "server", Packet{PacketKind::delivered, {}, LinkType::linux_sll, std::nullopt, std::nullopt, std::nullopt}},
        {9, "server", Packet{PacketKind::delivered, syn, LinkType::null, std::nullopt, std::nullopt, std::nullopt}},
        {10, "server", trace::CallFailed{SocketId{4}, "bind", "EADDRINUSE", "Address already in use"}},
        {10, "server", trace::CallFailed{SocketId{5}, "bind", "EACCES", "Permission denied", endpoint("127.0.0.1:80")}},
        {10, "server", trace::CallFailed{std::nullopt, "getaddrinfo", "EAI_NONAME", "Name or service not known"}},
        {11, "client", Closed{SocketId{7}}},
        {11, "client", TimerArmed{SocketId{7}, TimerKind::retransmission, 1000000, 0}},
        {11, "client", TimerArmed{SocketId{7}, TimerKind::time_wait, 60000000, 4294967295U}},
        {11, "client", TimerFired{SocketId{7}, TimerKind::retransmission}},
        {11, "client", TimerStopped{SocketId{7}, TimerKind::delayed_ack}},
        {11, "client", TimerStopped{SocketId{7}, TimerKind::keepalive}},
        {11, "client", TimerFired{SocketId{7}, TimerKind::persist}},
        {11, "server", ChildCreated{SocketId{9}, SocketId{10}, {endpoint("[2001:db8::2]:443"), endpoint("[2001:db8::1]:50000")}}},
        {11, "server", RuleAdded{"r1", drop_port(Protocol::tcp, 22)}},
        {11, "server", RuleAdded{"fw-2", reject_port(Protocol::udp, 53, RejectWith::icmp_admin_prohibited)}},
        {11, "server", RuleAdded{"r3", reject_port(Protocol::tcp, 8080, RejectWith::tcp_reset)}},
        {11, "server", RuleAdded{"all", drop_all()}},
        {11, "server", RuleRemoved{"r1"}},
        {11, "router", RuleAdded{"replies", *parse_nft_rule("ct state established,related accept", FirewallChain::forward)}},
        {11, "router", RuleAdded{"syn", *parse_nft_rule("iifname \"router-client\" tcp flags syn / syn,ack drop", FirewallChain::forward)}},
        {11, "prober", ScanProbe{scan::ScanType::connect, endpoint("127.0.0.1:22"), 0, SocketId{4}}},
        {11, "prober", ScanProbe{scan::ScanType::udp, endpoint("[::1]:53"), 2, std::nullopt}},
        {11, "prober", ScanResult{scan::ScanType::udp, endpoint("[::1]:53"), scan::PortState::open_filtered,
                                   scan::Reason::no_response}},
        {11, "prober", ScanResult{scan::ScanType::connect, endpoint("127.0.0.1:22"), scan::PortState::closed,
                                   scan::Reason::conn_refused}},
        {12, "server-2", HostAdded{{IpAddress::parse("192.0.2.1").value(), IpAddress::parse("2001:db8::1").value()}, "server"}},
        {12, "scanner", HostAdded{{}, ""}},
        {12, "router", NatTranslated{NatKind::snat, Protocol::tcp, 1,
                                     Boxed(NatFlows{{endpoint("192.0.2.10:50000"), endpoint("198.51.100.2:80")},
                                                    {endpoint("198.51.100.1:1024"), endpoint("198.51.100.2:80")}})}},
        {12, "router", NatTranslated{NatKind::dnat, Protocol::udp, 4294967295U,
                                     Boxed(NatFlows{{endpoint("[2001:db8:1::9]:5353"), endpoint("[2001:db8::1]:8080")},
                                                    {endpoint("[2001:db8:1::9]:5353"), endpoint("[2001:db8:2::80]:80")}})}},
        {12, "router", Packet{PacketKind::dropped, syn, LinkType::raw, "TTL 1 expired in transit", "client", "server",
                              DropCause::ttl_exceeded, std::nullopt}},
        {12, "router", Packet{PacketKind::dropped, syn, LinkType::raw, "forward: iifname outside ct state new drop", "client",
                              "router", DropCause::ct_state, std::nullopt}},
        {12, "client", Note{"Ports are per protocol: \"TCP 53\" and \"UDP 53\" differ.\n"}},
        {18446744073709551615ULL, "h", Note{""}},  // the largest t_us
    };
}

std::string header_line() { return R"({"portlab_trace": 3, "source": "test", "generator": "test_trace"})"; }

Result<trace::Trace> read_text(const std::string& text) {
    std::istringstream in(text);
    return trace::read_trace(in);
}

// Lines inside ```json fences of a Markdown file.
std::vector<std::vector<std::string>> json_blocks(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::vector<std::string>> blocks;
    bool inside = false;
    for (std::string line; std::getline(in, line);) {
        if (!inside && line == "```json") {
            inside = true;
            blocks.emplace_back();
        } else if (inside && line.rfind("```", 0) == 0) {
            inside = false;
        } else if (inside) {
            blocks.back().push_back(line);
        }
    }
    return blocks;
}


}  // namespace

TEST_CASE("every event type survives a trip through one JSON line", "[trace]") {
    const auto events = every_kind_of_event();
    std::set<std::string_view> types;
    for (std::size_t i = 0; i < events.size(); ++i) {
        CAPTURE(i);
        const std::string line = trace::to_json_line(events[i]);
        CAPTURE(line);
        CHECK(line.find('\n') == std::string::npos);
        const auto parsed = trace::parse_event_line(line, 2);
        REQUIRE(parsed);
        CHECK(*parsed == events[i]);
        types.insert(trace::type_name(events[i].body));
    }
    CHECK(types.size() == std::variant_size_v<trace::EventBody>);
}

TEST_CASE("a line is written as docs/trace-format.md shows it", "[trace]") {
    // Field order and spelling from the documentation: t_us, host, type, then the body.
    const trace::Event bound{10, "server",
                             trace::Bound{trace::SocketId{1}, endpoint("0.0.0.0:8080"), trace::BindHow::explicit_port,
                                          "SO_REUSEADDR set"}};
    CHECK(trace::to_json_line(bound) ==
          R"({"t_us":10,"host":"server","type":"bound","socket":1,"endpoint":{"address":"0.0.0.0","port":8080},"how":"explicit","note":"SO_REUSEADDR set"})");
    const trace::Event dropped{400, "router",
                               trace::Packet{trace::PacketKind::dropped, {0x45, 0x00, 0xAB}, LinkType::raw,
                                             "DROP udp dport 9000", std::nullopt, std::nullopt}};
    CHECK(trace::to_json_line(dropped) ==
          R"({"t_us":400,"host":"router","type":"packet","kind":"dropped","link":"raw","bytes":"4500ab","rule":"DROP udp dport 9000"})");
}

TEST_CASE("text that is not UTF-8 is written as U+FFFD, not an exception", "[trace]") {
    const trace::Event note{1, "h", trace::Note{"caf\xe9"}};  // Latin-1 e-acute
    const std::string line = trace::to_json_line(note);
    const auto parsed = trace::parse_event_line(line, 2);
    REQUIRE(parsed);
    CHECK(std::get<trace::Note>(parsed->body).text == "caf\xef\xbf\xbd");  // U+FFFD in UTF-8
}

TEST_CASE("every example in docs/trace-format.md parses", "[trace][docs]") {
    const auto blocks = json_blocks(docs_path);
    REQUIRE(blocks.size() >= 12);  // header, 11 event types, a whole trace
    std::set<std::string_view> types_shown;
    std::size_t whole_traces = 0;
    for (const auto& block : blocks) {
        REQUIRE_FALSE(block.empty());
        for (std::size_t i = 0; i < block.size(); ++i) {
            CAPTURE(block[i]);
            if (block[i].find("\"portlab_trace\"") != std::string::npos) {
                CHECK(trace::parse_header_line(block[i], 1));
                continue;
            }
            const auto event = trace::parse_event_line(block[i], i + 1);
            REQUIRE(event);
            types_shown.insert(trace::type_name(event->body));
        }
        if (block.size() > 2 && block[0].find("\"portlab_trace\"") != std::string::npos) {
            // A block that starts with a header is a whole trace: the cross-line rules hold too.
            std::string text;
            for (const auto& line : block) text += line + "\n";
            const auto whole = read_text(text);
            INFO((whole ? std::string() : whole.error().message));
            CHECK(whole);
            ++whole_traces;
        }
    }
    CHECK(types_shown.size() == std::variant_size_v<trace::EventBody>);
    CHECK(whole_traces == 1);
}

TEST_CASE("a bad line is refused with its line number and the reason", "[trace]") {
    const std::string header = header_line() + "\n";
    const std::string good = R"({"t_us": 10, "host": "a", "type": "closed", "socket": 1})" "\n";
    auto [text, line, reason] = GENERATE_REF(table<std::string, int, std::string>({
        // the header
        {"", 1, "empty trace"},
        {"not json\n", 1, "not JSON"},
        {"[1, 2]\n", 1, "not a JSON object"},
        {R"({"source": "sim"})" "\n", 1, "not a portlab trace header"},
        {R"({"portlab_trace": 4, "source": "sim", "generator": "g"})" "\n", 1, "version 4 is not supported"},
        {R"({"portlab_trace": 4, "source": "sim", "generator": "g"})" "\n", 1, "reads versions 1 to 3"},
        {R"({"portlab_trace": 0, "source": "sim", "generator": "g"})" "\n", 1, "version 0 is not supported"},
        {R"({"portlab_trace": "1", "source": "sim", "generator": "g"})" "\n", 1, "must be an unsigned integer, not string"},
        {R"({"portlab_trace": 1, "generator": "g"})" "\n", 1, "missing field 'source'"},
        {R"({"portlab_trace": 1, "source": "", "generator": "g"})" "\n", 1, "'source' must not be empty"},
        // the line itself
        {header + good + "\n", 3, "empty line"},
        {header + good + "{\"t_us\": 11,\n", 3, "not JSON"},
        {header + good + "\"closed\"\n", 3, "not a JSON object but string"},
        // the common fields
        {header + good + R"({"host": "a", "type": "closed", "socket": 1})" "\n", 3, "missing field 't_us'"},
        {header + good + R"({"t_us": -1, "host": "a", "type": "closed", "socket": 1})" "\n", 3, "not negative integer"},
        {header + good + R"({"t_us": 10.5, "host": "a", "type": "closed", "socket": 1})" "\n", 3, "not fractional number"},
        {header + good + R"({"t_us": 10, "host": "", "type": "closed", "socket": 1})" "\n", 3, "'host' must not be empty"},
        {header + good + R"({"t_us": 10, "host": "a", "socket": 1})" "\n", 3, "missing field 'type'"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "socket_opened", "socket": 1})" "\n", 3, "unknown event type 'socket_opened'"},
        // the body
        {header + good + R"({"t_us": 10, "host": "a", "type": "closed"})" "\n", 3, "missing field 'socket'"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "closed", "socket": "1"})" "\n", 3, "field 'socket' must be an unsigned integer, not string"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "closed", "socket": 4294967296})" "\n", 3, "above its maximum 4294967295"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "listening", "socket": 1, "backlog": null})" "\n", 3, "'backlog' must be an unsigned integer, not null"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "connect_started", "socket": 1, "remote": {"address": "10.0.0.1", "port": 70000}})" "\n", 3, "port 70000 in field 'port' is out of range 0-65535"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "connect_started", "socket": 1, "remote": {"address": "localhost", "port": 80}})" "\n", 3, "not an IPv4 or IPv6 address"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "connect_started", "socket": 1, "remote": "10.0.0.1:80"})" "\n", 3, "'remote' must be an object"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "accepted", "listener": 1, "socket": 2, "four_tuple": {"local": {"address": "10.0.0.1", "port": 80}}})" "\n", 3, "missing field 'remote'"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "bound", "socket": 1, "endpoint": {"address": "10.0.0.1", "port": 80}, "how": "implicit"})" "\n", 3, "'how' is 'implicit', expected one of: explicit, ephemeral, bind_zero"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "state_changed", "socket": 1, "from": "ESTAB", "to": "CLOSED", "cause": ""})" "\n", 3, "write ESTABLISHED"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "state_changed", "socket": 1, "from": "LISTEN", "to": "OPEN", "cause": ""})" "\n", 3, "'to' is 'OPEN', not an RFC 793 state name"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "packet", "kind": "sent", "bytes": "450"})" "\n", 3, "bad hex in 'bytes': odd number of digits"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "packet", "kind": "sent", "bytes": "45 000"})" "\n", 3, "bad hex in 'bytes': ' ' at position 2"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "packet", "kind": "sent", "bytes": "4g"})" "\n", 3, "'g' at position 1 is not a hex digit"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "packet", "kind": "lost", "bytes": ""})" "\n", 3, "'kind' is 'lost'"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "packet", "kind": "sent", "link": "wifi", "bytes": ""})" "\n", 3, "'link' is 'wifi'"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "ephemeral_assigned", "socket": 1, "port": 80, "range_low": 32768, "range_high": 60999, "algorithm": "x"})" "\n", 3, "port 80 is outside its range 32768-60999"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "ephemeral_assigned", "socket": 1, "port": 80, "range_low": 90, "range_high": 70, "algorithm": "x"})" "\n", 3, "range_low > range_high"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "error", "call": "bind", "errno_name": 98, "message": ""})" "\n", 3, "'errno_name' must be a string, not unsigned integer"},
        // version 2's events and keys
        {header + good + R"({"t_us": 10, "host": "a", "type": "state_changed", "socket": 1, "from": "LISTEN", "to": "CLOSED", "cause": "", "evidence": "guessed"})" "\n", 3, "'evidence' is 'guessed', expected one of: model, observed, inferred"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "timer_armed", "socket": 1, "timer": "rto", "duration_us": 1000000, "attempt": 0})" "\n", 3, "'timer' is 'rto', expected one of: retransmission, time-wait, keepalive, persist, delayed-ack"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "timer_armed", "socket": 1, "timer": "retransmission", "duration_us": -5, "attempt": 0})" "\n", 3, "'duration_us' must be an unsigned integer, not negative integer"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "timer_armed", "socket": 1, "timer": "retransmission", "duration_us": 5})" "\n", 3, "missing field 'attempt'"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "timer_armed", "socket": 1, "timer": "retransmission", "duration_us": 5, "attempt": 4294967296})" "\n", 3, "above its maximum 4294967295"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "timer_fired", "socket": 1})" "\n", 3, "missing field 'timer'"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "timer_stopped", "socket": 1, "timer": "TIME-WAIT"})" "\n", 3, "'timer' is 'TIME-WAIT'"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "packet", "kind": "dropped", "bytes": "", "cause": "firewal"})" "\n", 3, "'cause' is 'firewal', expected one of: firewall, link, no-socket, checksum, no-route, other, ttl-exceeded, ct-state"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "packet", "kind": "sent", "bytes": "", "cause": "link"})" "\n", 3, "'cause' is for dropped packets only, and this one is sent"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "packet", "kind": "dropped", "bytes": "", "cause": "link", "rule_id": "r1"})" "\n", 3, "'rule_id' needs \"cause\": \"firewall\""},
        {header + good + R"({"t_us": 10, "host": "a", "type": "packet", "kind": "dropped", "bytes": "", "rule_id": "r1"})" "\n", 3, "'rule_id' needs"},
        {header + good + R"({"t_us": 10, "host": "b", "type": "host", "addresses": "10.0.0.1", "role": ""})" "\n", 3, "'addresses' must be an array of addresses, not string"},
        {header + good + R"({"t_us": 10, "host": "b", "type": "host", "addresses": ["10.0.0.1", 7], "role": ""})" "\n", 3, "in 'addresses' item 1: an address must be a string, not unsigned integer"},
        {header + good + R"({"t_us": 10, "host": "b", "type": "host", "addresses": ["10.0.0.300"], "role": ""})" "\n", 3, "in 'addresses' item 0: "},
        {header + good + R"({"t_us": 10, "host": "b", "type": "host", "addresses": []})" "\n", 3, "missing field 'role'"},
        // the rules across lines
        {header + good + R"({"t_us": 9, "host": "b", "type": "note", "text": "late"})" "\n", 3, "time goes backwards: t_us 9 after 10"},
        {header + R"({"t_us": 1, "host": "b", "type": "host", "addresses": [], "role": ""})" "\n" +
             R"({"t_us": 2, "host": "b", "type": "host", "addresses": ["10.0.0.2"], "role": ""})" "\n", 3,
         "host 'b' was already declared on line 2"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "host", "addresses": [], "role": "client"})" "\n", 3,
         "host 'a' is declared after line 2 already named it"},
        {R"({"portlab_trace": 1, "source": "lab", "generator": "g"})" "\n" + good +
             R"({"t_us": 10, "host": "a", "type": "timer_fired", "socket": 1, "timer": "retransmission"})" "\n", 3,
         "event type 'timer_fired' needs trace format version 2, but the header says 1"},
        {header + R"({"t_us": 1, "host": "a", "type": "socket_created", "socket": 5, "protocol": "tcp", "family": "ipv4"})" "\n" +
             R"({"t_us": 2, "host": "a", "type": "socket_created", "socket": 5, "protocol": "udp", "family": "ipv4"})" "\n", 3,
         "socket 5 on host 'a' was already created on line 2"},
        // rules and scans
        {header + good + R"({"t_us": 10, "host": "a", "type": "rule_added", "rule_id": "r1", "rule": "tcp dport 22 maybe"})" "\n", 3, "field 'rule': "},
        {header + good + R"({"t_us": 10, "host": "a", "type": "rule_added", "rule_id": "", "rule": "tcp dport 22 drop"})" "\n", 3, "'rule_id' must not be empty"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "rule_added", "rule_id": "r1", "rule": "udp dport 53 reject with tcp reset"})" "\n", 3, "field 'rule': "},
        {header + good + R"({"t_us": 10, "host": "a", "type": "rule_added", "rule_id": "r1", "rule": "drop", "chain": "output"})" "\n", 3, "field 'chain': "},
        {header + good + R"({"t_us": 10, "host": "a", "type": "packet", "kind": "dropped", "bytes": "", "cause": "no-route", "rule_id": "r1"})" "\n", 3, "'rule_id' needs \"cause\""},
        {header + good + R"({"t_us": 10, "host": "a", "type": "scan_probe", "scan": "xmas", "target": {"address": "10.0.0.1", "port": 80}, "attempt": 0})" "\n", 3, "field 'scan': unknown scan type"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "scan_result", "scan": "syn", "target": {"address": "10.0.0.1", "port": 80}, "state": "open-filtered", "reason": "no-response"})" "\n", 3, "field 'state': unknown port state"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "scan_result", "scan": "syn", "target": {"address": "10.0.0.1", "port": 80}, "state": "open", "reason": "because"})" "\n", 3, "field 'reason': unknown scan reason"},
        {header + R"({"t_us": 1, "host": "a", "type": "rule_added", "rule_id": "r1", "rule": "tcp dport 22 drop"})" "\n" +
             R"({"t_us": 2, "host": "a", "type": "rule_added", "rule_id": "r1", "rule": "udp dport 53 drop"})" "\n", 3,
         "rule 'r1' on host 'a' was already added on line 2 and is still in force"},
        {header + good + R"({"t_us": 10, "host": "a", "type": "rule_removed", "rule_id": "r9"})" "\n", 3,
         "rule 'r9' on host 'a' is not in force"},
        {R"({"portlab_trace": 1, "source": "lab", "generator": "g"})" "\n" + good +
             R"({"t_us": 10, "host": "a", "type": "scan_result", "scan": "syn", "target": {"address": "10.0.0.1", "port": 80}, "state": "open", "reason": "syn-ack"})" "\n", 3,
         "event type 'scan_result' needs trace format version 2"},
        // version 3: a router's translations
        {header + good + R"({"t_us": 10, "host": "r", "type": "nat", "kind": "pat", "protocol": "tcp", "conntrack_id": 1, "before": {"source": {"address": "192.0.2.10", "port": 5000}, "destination": {"address": "198.51.100.2", "port": 80}}, "after": {"source": {"address": "198.51.100.1", "port": 5000}, "destination": {"address": "198.51.100.2", "port": 80}}})" "\n", 3, "'kind' is 'pat', expected one of: snat, dnat, track"},
        {header + good + R"({"t_us": 10, "host": "r", "type": "nat", "kind": "track", "protocol": "tcp", "conntrack_id": 1, "before": {"source": {"address": "192.0.2.10", "port": 5000}, "destination": {"address": "198.51.100.2", "port": 80}}, "after": {"source": {"address": "198.51.100.1", "port": 5000}, "destination": {"address": "198.51.100.2", "port": 80}}})" "\n", 3, "a track entry translates nothing"},
        {header + good + R"({"t_us": 10, "host": "r", "type": "nat", "kind": "snat", "protocol": "tcp", "conntrack_id": 1, "before": {"source": {"address": "192.0.2.10", "port": 5000}, "destination": {"address": "198.51.100.2", "port": 80}}})" "\n", 3, "missing field 'after'"},
        {header + good + R"({"t_us": 10, "host": "r", "type": "nat", "kind": "snat", "protocol": "tcp", "conntrack_id": 1, "before": {"source": {"address": "192.0.2.10", "port": 5000}, "destination": {"address": "198.51.100.2", "port": 80}}, "after": {"source": {"address": "198.51.100.1", "port": 5000}}})" "\n", 3, "in 'after': missing field 'destination'"},
        {header + good + R"({"t_us": 10, "host": "r", "type": "nat", "kind": "snat", "protocol": "tcp", "conntrack_id": 1, "before": {"source": {"address": "192.0.2.10", "port": 5000}, "destination": {"address": "198.51.100.2", "port": 80}}, "after": {"source": {"address": "198.51.100.1", "port": 5000}, "destination": {"address": "198.51.100.3", "port": 80}}})" "\n", 3, "a snat translation keeps the destination"},
        {header + good + R"({"t_us": 10, "host": "r", "type": "nat", "kind": "dnat", "protocol": "udp", "conntrack_id": 1, "before": {"source": {"address": "192.0.2.10", "port": 5000}, "destination": {"address": "198.51.100.2", "port": 80}}, "after": {"source": {"address": "198.51.100.1", "port": 5000}, "destination": {"address": "198.51.100.3", "port": 80}}})" "\n", 3, "a dnat translation keeps the source"},
        {R"({"portlab_trace": 2, "source": "lab", "generator": "g"})" "\n" + good +
             R"({"t_us": 10, "host": "r", "type": "nat", "kind": "dnat", "protocol": "udp", "conntrack_id": 1, "before": {"source": {"address": "192.0.2.10", "port": 5000}, "destination": {"address": "198.51.100.1", "port": 8080}}, "after": {"source": {"address": "192.0.2.10", "port": 5000}, "destination": {"address": "192.0.2.80", "port": 80}}})" "\n", 3,
         "event type 'nat' needs trace format version 3, but the header says 2"},
        // connections that arrive, then are accepted
        {header + R"({"t_us": 1, "host": "a", "type": "child_created", "listener": 1, "socket": 2, "four_tuple": {"local": {"address": "10.0.0.1", "port": 80}, "remote": {"address": "10.0.0.2", "port": 4000}}})" "\n" +
             R"({"t_us": 2, "host": "a", "type": "accepted", "listener": 3, "socket": 2, "four_tuple": {"local": {"address": "10.0.0.1", "port": 80}, "remote": {"address": "10.0.0.2", "port": 4000}}})" "\n", 3,
         "socket 2 on host 'a' arrived at listener 1, so listener 3 cannot accept it"},
        {header + R"({"t_us": 1, "host": "a", "type": "child_created", "listener": 1, "socket": 2, "four_tuple": {"local": {"address": "10.0.0.1", "port": 80}, "remote": {"address": "10.0.0.2", "port": 4000}}})" "\n" +
             R"({"t_us": 2, "host": "a", "type": "socket_created", "socket": 2, "protocol": "tcp", "family": "ipv4"})" "\n", 3,
         "socket 2 on host 'a' was already created on line 2"},
        {header + R"({"t_us": 1, "host": "a", "type": "socket_created", "socket": 5, "protocol": "tcp", "family": "ipv4"})" "\n" +
             R"({"t_us": 2, "host": "a", "type": "accepted", "listener": 5, "socket": 5, "four_tuple": {"local": {"address": "10.0.0.1", "port": 80}, "remote": {"address": "10.0.0.2", "port": 4000}}})" "\n", 3,
         "socket 5 on host 'a' was already created on line 2"},
    }));
    CAPTURE(text);
    const auto trace = read_text(text);
    REQUIRE_FALSE(trace);
    CHECK_THAT(trace.error().message, Catch::StartsWith("line " + std::to_string(line) + ": "));
    CHECK_THAT(trace.error().message, Catch::Contains(reason));
    CHECK(trace.error().message.find('\n') == std::string::npos);
}

TEST_CASE("what the rules allow is accepted", "[trace]") {
    const std::string header = header_line() + "\n";
    SECTION("the same socket id on two hosts, and events at the same time") {
        const auto trace = read_text(header +
            R"({"t_us": 1, "host": "a", "type": "socket_created", "socket": 1, "protocol": "tcp", "family": "ipv4"})" "\n"
            R"({"t_us": 1, "host": "b", "type": "socket_created", "socket": 1, "protocol": "tcp", "family": "ipv4"})" "\n");
        REQUIRE(trace);
        CHECK(trace->events.size() == 2);
    }
    SECTION("fields a newer writer added, a missing link, upper-case hex and a CRLF line end") {
        const auto trace = read_text(header +
            R"({"t_us": 1, "host": "a", "type": "packet", "kind": "sent", "bytes": "45AB", "ttl_hint": 3})" "\r\n");
        REQUIRE(trace);
        REQUIRE(trace->events.size() == 1);
        const auto& packet = std::get<trace::Packet>(trace->events[0].body);
        CHECK(packet.link == LinkType::raw);
        CHECK(packet.bytes == Bytes{0x45, 0xab});
    }
    SECTION("a host declared before its events, others never declared, packets naming undeclared hosts") {
        const auto trace = read_text(header +
            R"({"t_us": 1, "host": "a", "type": "host", "addresses": ["10.0.0.1"], "role": "client"})" "\n"
            R"({"t_us": 1, "host": "b", "type": "note", "text": "b was never declared"})" "\n"
            R"({"t_us": 2, "host": "a", "type": "packet", "kind": "sent", "bytes": "", "to_host": "c"})" "\n"
            R"({"t_us": 3, "host": "c", "type": "host", "addresses": [], "role": ""})" "\n");
        REQUIRE(trace);
        CHECK(trace->events.size() == 4);
    }
    SECTION("a connection that arrives, is accepted once, and a rule removed and added again") {
        const std::string tuple = R"("four_tuple": {"local": {"address": "10.0.0.1", "port": 80}, "remote": {"address": "10.0.0.2", "port": 4000}})";
        const auto trace = read_text(header +
            R"({"t_us": 1, "host": "a", "type": "child_created", "listener": 1, "socket": 2, )" + tuple + "}\n" +
            R"({"t_us": 2, "host": "a", "type": "accepted", "listener": 1, "socket": 2, )" + tuple + "}\n" +
            R"({"t_us": 3, "host": "a", "type": "rule_added", "rule_id": "r1", "rule": "tcp dport 22 drop"})" "\n"
            R"({"t_us": 3, "host": "b", "type": "rule_added", "rule_id": "r1", "rule": "tcp dport 22 drop"})" "\n"
            R"({"t_us": 4, "host": "a", "type": "rule_removed", "rule_id": "r1"})" "\n"
            R"({"t_us": 5, "host": "a", "type": "rule_added", "rule_id": "r1", "rule": "udp dport 53 reject"})" "\n");
        REQUIRE(trace);
        CHECK(trace->events.size() == 6);
        // accepting it a second time would introduce socket 2 again
        const auto twice = read_text(header +
            R"({"t_us": 1, "host": "a", "type": "child_created", "listener": 1, "socket": 2, )" + tuple + "}\n" +
            R"({"t_us": 2, "host": "a", "type": "accepted", "listener": 1, "socket": 2, )" + tuple + "}\n" +
            R"({"t_us": 3, "host": "a", "type": "accepted", "listener": 1, "socket": 2, )" + tuple + "}\n");
        REQUIRE_FALSE(twice);
        CHECK_THAT(twice.error().message, Catch::Contains("line 4: socket 2 on host 'a' was already created on line 2"));
    }
    SECTION("a header alone is an empty trace") {
        const auto trace = read_text(header);
        REQUIRE(trace);
        CHECK(trace->header.source == "test");
        CHECK(trace->events.empty());
    }
}

TEST_CASE("every cut-short line is an error, never a crash", "[trace][robustness]") {
    for (const auto& event : every_kind_of_event()) {
        const std::string line = trace::to_json_line(event);
        for (std::size_t length = 0; length < line.size(); ++length) {
            CAPTURE(line, length);
            // A JSON object is not complete until its closing brace.
            CHECK_FALSE(trace::parse_event_line(std::string_view(line).substr(0, length), 7));
        }
    }
}

TEST_CASE("the fixture trace reads as written", "[trace]") {
    const auto trace = trace::read_trace_file(fixtures + "/trace_two_clients.jsonl");
    INFO((trace ? std::string() : trace.error().message));
    REQUIRE(trace);
    CHECK(trace->header.source == "test");
    CHECK(trace->header.scenario == "two-clients-one-port");
    CHECK(trace->header.title == "Two clients, one server port");
    REQUIRE(trace->events.size() == 20);

    std::vector<FourTuple> accepted;
    for (const auto& event : trace->events) {
        if (const auto* body = std::get_if<trace::Accepted>(&event.body)) accepted.push_back(body->four_tuple);
    }
    // Two connections to one listening port, told apart only by the client's address.
    REQUIRE(accepted.size() == 2);
    CHECK(accepted[0].local == accepted[1].local);
    CHECK(accepted[0].remote.port == accepted[1].remote.port);
    CHECK(accepted[0].remote.address != accepted[1].remote.address);

    const auto& failure = std::get<trace::CallFailed>(trace->events[6].body);
    CHECK(failure.errno_name == "EADDRINUSE");
    CHECK(failure.socket == trace::SocketId{2});

    const auto& dropped = std::get<trace::Packet>(trace->events.back().body);
    CHECK(dropped.kind == trace::PacketKind::dropped);
    CHECK(dropped.rule == "DROP udp dport 9000");
    CHECK(dropped.bytes.size() == 30);
}

TEST_CASE("a version-1 trace still reads: its states are the model's, its drops have no cause", "[trace][v1]") {
    const auto trace = read_text(
        R"({"portlab_trace": 1, "source": "sim", "generator": "portlab-sim 0.1.0"})" "\n"
        R"({"t_us": 1, "host": "a", "type": "state_changed", "socket": 1, "from": "CLOSED", "to": "SYN-SENT", "cause": "connect() called"})" "\n"
        R"({"t_us": 2, "host": "a", "type": "packet", "kind": "dropped", "bytes": "", "rule": "DROP tcp dport 80"})" "\n");
    INFO((trace ? std::string() : trace.error().message));
    REQUIRE(trace);
    CHECK(trace->header.version == 1);
    REQUIRE(trace->events.size() == 2);
    const auto& change = std::get<trace::StateChanged>(trace->events[0].body);
    CHECK(change.evidence == trace::Evidence::model);
    CHECK(change.to == TcpState::syn_sent);
    const auto& dropped = std::get<trace::Packet>(trace->events[1].body);
    CHECK_FALSE(dropped.cause);
    CHECK_FALSE(dropped.rule_id);
    CHECK(dropped.rule == "DROP tcp dport 80");

    const auto fixture = trace::read_trace_file(fixtures + "/trace_two_clients.jsonl");
    REQUIRE(fixture);
    CHECK(fixture->header.version == 1);
}

TEST_CASE("version 2's enumerations are spelt as docs/trace-format.md says", "[trace]") {
    CHECK(trace::to_string(trace::Evidence::observed) == "observed");
    CHECK(trace::to_string(trace::TimerKind::time_wait) == "time-wait");
    CHECK(trace::to_string(trace::TimerKind::delayed_ack) == "delayed-ack");
    CHECK(trace::to_string(trace::DropCause::no_socket) == "no-socket");
    CHECK(trace::to_string(trace::DropCause::no_route) == "no-route");
    const trace::Event armed{5, "client", trace::TimerArmed{trace::SocketId{3}, trace::TimerKind::time_wait, 60000000, 0}};
    CHECK(trace::to_json_line(armed) ==
          R"({"t_us":5,"host":"client","type":"timer_armed","socket":3,"timer":"time-wait","duration_us":60000000,"attempt":0})");
    const trace::Event host{0, "server",
                            trace::HostAdded{{IpAddress::parse("10.0.0.2").value()}, "server"}};
    CHECK(trace::to_json_line(host) == R"({"t_us":0,"host":"server","type":"host","addresses":["10.0.0.2"],"role":"server"})");
    CHECK(trace::introduced_in_version(host.body) == 2);
    CHECK(trace::introduced_in_version(trace::Note{}) == 1);
    CHECK(trace::introduced_in_version(trace::NatTranslated{}) == 3);
    CHECK(trace::to_string(trace::NatKind::dnat) == "dnat");
    CHECK(trace::to_string(trace::DropCause::ttl_exceeded) == "ttl-exceeded");
}

TEST_CASE("a TraceWriter writes what read_trace reads back", "[trace]") {
    const trace::TraceHeader header{trace::format_version, "test", "test_trace", "every-kind", std::nullopt};
    const auto events = every_kind_of_event();

    SECTION("to a stream") {
        std::ostringstream out;
        {
            auto writer = trace::TraceWriter::to_stream(out, header);
            REQUIRE(writer);
            for (const auto& event : events) REQUIRE(writer->write(event));
            REQUIRE(writer->flush());
        }
        const auto trace = read_text(out.str());
        INFO((trace ? std::string() : trace.error().message));
        REQUIRE(trace);
        CHECK(trace->header == header);
        CHECK(trace->events == events);
    }
    SECTION("to a file") {
        TempFile file("writer.jsonl");
        {
            auto writer = trace::TraceWriter::to_file(file.path, header);
            REQUIRE(writer);
            for (const auto& event : events) REQUIRE(writer->write(event));
            REQUIRE(writer->close());
        }
        const auto trace = trace::read_trace_file(file.path);
        REQUIRE(trace);
        CHECK(trace->events == events);
    }
}

TEST_CASE("a TraceWriter refuses an event that breaks a rule, naming its line", "[trace]") {
    std::ostringstream out;
    auto writer = trace::TraceWriter::to_stream(out, {trace::format_version, "test", "test_trace", std::nullopt, std::nullopt});
    REQUIRE(writer);
    REQUIRE(writer->write({10, "a", trace::Note{"first"}}));  // line 2

    SECTION("time going backwards") {
        const auto written = writer->write({9, "a", trace::Note{"late"}});
        REQUIRE_FALSE(written);
        CHECK_THAT(written.error().message, Catch::Contains("line 3: time goes backwards"));
    }
    SECTION("an empty host") {
        const auto written = writer->write({10, "", trace::Note{"who?"}});
        REQUIRE_FALSE(written);
        CHECK_THAT(written.error().message, Catch::Contains("'host' must not be empty"));
    }
    SECTION("a drop cause on a packet that was not dropped") {
        const auto written = writer->write(
            {10, "a", trace::Packet{trace::PacketKind::delivered, {}, LinkType::raw, std::nullopt, std::nullopt,
                                    std::nullopt, trace::DropCause::link, std::nullopt}});
        REQUIRE_FALSE(written);
        CHECK_THAT(written.error().message, Catch::Contains("line 3: field 'cause' is for dropped packets only"));
    }
    SECTION("a host declared twice") {
        REQUIRE(writer->write({10, "b", trace::HostAdded{{}, "server"}}));
        const auto written = writer->write({10, "b", trace::HostAdded{{}, "server"}});
        REQUIRE_FALSE(written);
        CHECK_THAT(written.error().message, Catch::Contains("line 4: host 'b' was already declared on line 3"));
    }
    SECTION("an ephemeral port outside its range") {
        const auto written =
            writer->write({10, "a", trace::EphemeralAssigned{trace::SocketId{1}, 80, 32768, 60999, "x", std::nullopt}});
        REQUIRE_FALSE(written);
        CHECK_THAT(written.error().message, Catch::Contains("outside its range"));
    }
    // Nothing refused reached the stream: it still reads as a valid trace.
    CHECK(read_text(out.str()));
}

TEST_CASE("a header the writer cannot write, and files that cannot be opened", "[trace]") {
    std::ostringstream out;
    const auto future = trace::TraceWriter::to_stream(out, {4, "test", "g", std::nullopt, std::nullopt});
    REQUIRE_FALSE(future);
    CHECK_THAT(future.error().message, Catch::Contains("version 3, not 4"));
    // A writer writes the current version only: its events may be version 3's.
    const auto past = trace::TraceWriter::to_stream(out, {2, "test", "g", std::nullopt, std::nullopt});
    REQUIRE_FALSE(past);
    CHECK_THAT(past.error().message, Catch::Contains("version 3, not 2"));

    const auto missing = trace::read_trace_file("/nonexistent/portlab/trace.jsonl");
    REQUIRE_FALSE(missing);
    CHECK_THAT(missing.error().message, Catch::Contains("/nonexistent/portlab/trace.jsonl"));
    CHECK_THAT(missing.error().message, Catch::Contains("No such file or directory"));
}

// ---- the fast path ----------------------------------------------------------------
// parse_event_line reads the lines writers produce with a small scanner and hands
// anything else to nlohmann::json's DOM parser. The two must never disagree: when
// the scanner returns an event, the full parser returns the same one, and every
// error still comes from the full parser, word for word.

namespace {

// What parse_event_line promises for one line; returns "" when it holds.
std::string disagreement(std::string_view line) {
    const auto full = trace::parse_event_line_full(line, 5);
    const auto fast = trace::parse_event_line_fast(line);
    const auto both = trace::parse_event_line(line, 5);
    if (fast && !full) return "the fast path accepted a line the full parser refuses (" + full.error().message + ")";
    if (fast && !(*fast == *full)) return "the fast path read a different event: " + trace::to_json_line(*fast);
    if (full.has_value() != both.has_value()) return "parse_event_line and the full parser disagree on success";
    if (!full && full.error().message != both.error().message)
        return "different messages: '" + both.error().message + "' vs '" + full.error().message + "'";
    if (full && !(*full == *both)) return "parse_event_line read a different event";
    return {};
}

}  // namespace

TEST_CASE("the fast path reads every event type as the full parser does", "[trace][fast]") {
    std::set<std::string_view> fast_types;
    for (const auto& event : every_kind_of_event()) {
        const std::string line = trace::to_json_line(event);
        CAPTURE(line);
        CHECK(disagreement(line).empty());
        if (const auto fast = trace::parse_event_line_fast(line)) {
            CHECK(*fast == event);
            fast_types.insert(trace::type_name(fast->body));
        }
    }
    // Only the note with escaped quotes and a newline, and host lines (their
    // addresses are an array), need the full parser; every other type is read fast.
    CHECK(fast_types.size() == std::variant_size_v<trace::EventBody> - 1);
    CHECK_FALSE(fast_types.contains("host"));
}

TEST_CASE("the fast path leaves unusual but valid lines to the full parser", "[trace][fast]") {
    const std::string line = GENERATE(as<std::string>{},
        R"({"t_us": 1, "host": "a", "type": "note", "text": "caf\u00e9"})",
        "{\"t_us\": 1, \"host\": \"a\", \"type\": \"note\", \"text\": \"caf\xc3\xa9 \xe2\x86\x92 port 80\"}",
        R"({"t_us": 1, "host": "a", "type": "note", "text": "a \"quoted\" word"})",
        R"({"t\u005fus": 1, "host": "a", "type": "closed", "socket": 1})",
        R"({"t_us": 1, "host": "a", "type": "closed", "socket": 1, "extra": [1, 2, {"x": null}], "flag": true})",
        R"({"t_us": 1, "host": "a", "type": "closed", "socket": 1, "weight": -3.5e2})",
        R"({"t_us": 1, "host": "a", "type": "closed", "socket": 1, "socket": 2})",  // the last one wins
        "\xef\xbb\xbf{\"t_us\": 1, \"host\": \"a\", \"type\": \"closed\", \"socket\": 1}",  // a byte-order mark
        R"({"t_us": 1, "host": "a", "type": "closed", "socket": 1, "a": {"b": {"c": {"d": 1}}}})",
        R"({"t_us": 1, "host": "a", "type": "closed", "socket": 1, "k1": 1, "k2": 2, "k3": 3, "k4": 4, "k5": 5, "k6": 6, "k7": 7, "k8": 8, "k9": 9})");
    CAPTURE(line);
    CHECK_FALSE(trace::parse_event_line_fast(line));
    CHECK(trace::parse_event_line(line, 5));
    CHECK(disagreement(line).empty());
}

TEST_CASE("the fast path accepts the whitespace and field order JSON allows", "[trace][fast]") {
    const std::string line = GENERATE(as<std::string>{},
        R"({"t_us":1,"host":"a","type":"closed","socket":1})",
        " \t{ \"socket\" : 1 , \"type\" : \"closed\" , \"host\" : \"a\" , \"t_us\" : 1 } \r",
        R"({"type": "closed", "socket": 1, "t_us": 1, "host": "a", "ignored": "x", "also": {}})");
    CAPTURE(line);
    const auto fast = trace::parse_event_line_fast(line);
    REQUIRE(fast);
    CHECK(*fast == trace::Event{1, "a", trace::Closed{trace::SocketId{1}}});
    CHECK(disagreement(line).empty());
}

TEST_CASE("malformed lines get the full parser's message, whichever byte is wrong", "[trace][fast][robustness]") {
    // Every event type, each line mutated at every position: a byte replaced by
    // one of a few troublemakers, or removed. Whatever comes out, the fast path
    // must not accept what the full parser refuses, nor read it differently.
    const std::string troublemakers = std::string("\"\\-0 9x{}[],:.e") + '\x80' + '\x01';
    std::vector<std::string> problems;
    std::size_t lines = 0;
    std::size_t fast_accepted = 0;
    for (const auto& event : every_kind_of_event()) {
        const std::string line = trace::to_json_line(event);
        const auto check = [&](const std::string& variant) {
            ++lines;
            if (trace::parse_event_line_fast(variant)) ++fast_accepted;
            if (auto problem = disagreement(variant); !problem.empty() && problems.size() < 10)
                problems.push_back(variant + "  ->  " + problem);
        };
        for (std::size_t at = 0; at < line.size(); ++at) {
            for (const char c : troublemakers) {
                if (line[at] == c) continue;
                std::string variant = line;
                variant[at] = c;
                check(variant);
            }
            check(line.substr(0, at) + line.substr(at + 1));
        }
    }
    CAPTURE(lines, fast_accepted);
    CHECK(problems.empty());
    for (const auto& problem : problems) UNSCOPED_INFO(problem);
    CHECK(fast_accepted > 0);  // some mutations stay valid (a digit for a digit), and are read fast
}

TEST_CASE("the fast path declines out-of-range numbers and broken rules, and the message is the full parser's", "[trace][fast]") {
    auto [line, reason] = GENERATE(table<std::string, std::string>({
        {R"({"t_us": 18446744073709551616, "host": "a", "type": "closed", "socket": 1})", "not fractional number"},
        {R"({"t_us": 01, "host": "a", "type": "closed", "socket": 1})", "not JSON"},
        {R"({"t_us": 1, "host": "a", "type": "closed", "socket": 4294967296})", "above its maximum 4294967295"},
        {R"({"t_us": 1, "host": "a", "type": "listening", "socket": 1, "backlog": 4294967296})", "above its maximum"},
        {R"({"t_us": 1, "host": "a", "type": "connect_started", "socket": 1, "remote": {"address": "10.0.0.1", "port": 65536}})", "out of range 0-65535"},
        {R"({"t_us": 1, "host": "a", "type": "ephemeral_assigned", "socket": 1, "port": 80, "range_low": 90, "range_high": 70, "algorithm": "x"})", "range_low > range_high"},
        {R"({"t_us": 1, "host": "a", "type": "state_changed", "socket": 1, "from": "syn-sent", "to": "CLOSED", "cause": ""})", "write SYN-SENT"},
        {R"({"t_us": 1, "host": "a", "type": "packet", "kind": "sent", "bytes": "4"})", "odd number of digits"},
        {R"({"t_us": 1, "host": "", "type": "closed", "socket": 1})", "'host' must not be empty"},
        {R"({"t_us": 1, "host": "a", "type": "closed", "socket": 1} x)", "not JSON"},
        {R"({"t_us": 1, "host": "a", "type": "closed", "socket": 1,})", "not JSON"},
        {R"({"t_us": 1, "host": "a", "type": "bound", "socket": 1, "endpoint": {"address": "10.0.0.1", "port": 80}, "how": "explicit", "note": 5})", "'note' must be a string"},
    }));
    CAPTURE(line);
    CHECK_FALSE(trace::parse_event_line_fast(line));
    const auto parsed = trace::parse_event_line(line, 9);
    REQUIRE_FALSE(parsed);
    CHECK_THAT(parsed.error().message, Catch::StartsWith("line 9: "));
    CHECK_THAT(parsed.error().message, Catch::Contains(reason));
    CHECK(disagreement(line).empty());
}

TEST_CASE("every RFC 793 state name the fast path reads parses back to itself", "[trace][fast][tcp_state]") {
    for (int i = 0; i <= static_cast<int>(TcpState::time_wait); ++i) {
        const auto state = static_cast<TcpState>(i);
        CAPTURE(to_string(state));
        const auto parsed = parse_tcp_state(to_string(state));
        REQUIRE(parsed);
        CHECK(*parsed == state);
    }
}

// Issue 12, item 4: a reader's message quotes the file; a line holding ESC (raw, or as a JSON
// escape the parser decodes) gives a message of one line that cannot drive a terminal.
TEST_CASE("a trace line holding escape sequences gives a one-line error without control bytes", "[trace][safety]") {
    const std::string header = R"({"portlab_trace":2,"source":"lab","generator":"test"})";
    const auto line = GENERATE(as<std::string>{},
                               "not json \x1b]0;owned\x07\x1b[2J\rstill the line",
                               R"({"t_us":1,"host":"a","type":"bogus\u001b]0;owned\u0007\n\u009b2J"})");
    CAPTURE(line);
    TempFile file("escape.jsonl");
    std::ofstream(file.path) << header << '\n' << line << '\n';
    const auto read = trace::read_trace_file(file.path);
    REQUIRE_FALSE(read.has_value());
    const auto& message = read.error().message;
    CAPTURE(message);
    CHECK(message.find('\n') == std::string::npos);
    CHECK(message.find('\r') == std::string::npos);
    CHECK(message.find('\x1b') == std::string::npos);
    CHECK(message.find('\x07') == std::string::npos);
    CHECK(message.find("\xc2\x9b") == std::string::npos);
    CHECK_THAT(message, Catch::Contains("line 2"));
}

// Issue 12, item 6: a file whose first "line" is huge is refused after max_trace_line_bytes,
// not read into memory whole (the reader's buffer never holds more than the limit + 1).
TEST_CASE("a trace whose first line is longer than a trace line may be is refused, naming line 1", "[trace][safety]") {
    TempFile file("long.jsonl");
    {
        std::ofstream out(file.path);
        const std::string block(1 << 16, 'x');
        out << R"({"portlab_trace":2,"source":")";
        for (std::size_t written = 0; written < trace::max_trace_line_bytes * 3; written += block.size()) out << block;
        out << "\"}\n";
    }
    const auto read = trace::read_trace_file(file.path);
    REQUIRE_FALSE(read.has_value());
    CHECK_THAT(read.error().message, Catch::Contains("line 1"));
    std::ifstream in(file.path);
    const auto streamed = trace::read_trace(in);
    REQUIRE_FALSE(streamed.has_value());
    CHECK_THAT(streamed.error().message, Catch::Contains("line 1"));
    // A line of exactly the limit is still read (and refused only for what it says).
    const std::string at_limit = R"({"portlab_trace":2,"source":"lab","generator":")" +
                                 std::string(trace::max_trace_line_bytes - 50, 'g') + "\"}";
    CHECK(at_limit.size() <= trace::max_trace_line_bytes);
    std::istringstream exact(at_limit + "\n");
    CHECK(trace::read_trace(exact).has_value());
}

TEST_CASE("an event log grows in chunks without moving the events it holds, and reads as the vector it replaces", "[trace][event_log]") {
    const std::size_t count = 3 * trace::EventLog::chunk_events + 5;  // a part-filled fourth chunk
    trace::EventLog log;
    std::vector<trace::Event> expected;
    const trace::Event* first = nullptr;
    for (std::size_t i = 0; i < count; ++i) {
        trace::Event event{i, i % 2 ? "server" : "client", trace::Closed{trace::SocketId{static_cast<std::uint32_t>(i)}}};
        if (i % 7 == 0) event.body = trace::Packet{trace::PacketKind::sent, Bytes(i % 50, 0x45), LinkType::raw, {}, "client", "server"};
        expected.push_back(event);
        log.push_back(std::move(event));
        if (i == 0) first = &log[0];
        REQUIRE(&log[0] == first);  // never moved
    }
    CHECK(log.size() == count);
    CHECK(log.back() == expected.back());
    CHECK(log == expected);
    CHECK(log.to_vector() == expected);
    CHECK(std::vector<trace::Event>(log.begin(), log.end()) == expected);
    CHECK(static_cast<std::size_t>(log.end() - log.begin()) == count);

    const trace::EventLog copy = log;
    CHECK(copy == log);
    trace::EventLog moved = std::move(log);
    CHECK(moved == expected);
    CHECK(log.empty());  // NOLINT: a moved-from log is empty and usable
    moved.clear();
    CHECK(moved.empty());
    moved.push_back(expected[7]);
    CHECK(moved.back() == expected[7]);
    CHECK(copy.size() == count);  // the copy holds its own events
}

TEST_CASE("the sent and delivered events of a packet share its bytes, and copies of shared texts compare by value", "[trace]") {
    const trace::SharedBytes bytes = Bytes{0x45, 0x00, 0x00, 0x14};
    const trace::Packet sent{trace::PacketKind::sent, bytes, LinkType::raw, {}, "client", "server"};
    const trace::Packet delivered{trace::PacketKind::delivered, sent.bytes, LinkType::raw, {}, sent.from_host, sent.to_host};
    CHECK(sent.bytes.data() == delivered.bytes.data());  // one copy of the bytes
    CHECK(delivered.bytes == Bytes{0x45, 0x00, 0x00, 0x14});
    CHECK(delivered.from_host == std::string("client"));
    CHECK(trace::OptText("x") == trace::OptText(std::string("x")));
    CHECK(trace::OptText() == std::nullopt);
    CHECK_FALSE(trace::OptText("") == std::nullopt);  // present but empty is not absent
    CHECK(trace::Text() == "");
    CHECK(trace::Text("EADDRINUSE") == std::string_view("EADDRINUSE"));
}
