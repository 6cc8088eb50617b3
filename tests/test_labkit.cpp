// The lab kit: argument validation, the trace recorder, errno names and the Asio adapters.
// Facts come from <cerrno>/<cstring>, the trace reader, and hand-written addresses.
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <asio/error.hpp>

#include "labkit/labkit.hpp"
#include "labkit/observe.hpp"
#include "portlab/trace.hpp"
#include "support.hpp"

using namespace portlab;
namespace labkit = portlab::labkit;

namespace {

struct LabRun {
    int exit_code = -1;
    std::string err;
    labkit::ServerOptions server;
};

// Runs a lab body that only parses, with stderr captured, as a lab's main() would.
LabRun run_parsing_lab(std::vector<std::string> args) {
    args.insert(args.begin(), "labXX_test");
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    std::ostringstream captured;
    auto* const old = std::cerr.rdbuf(captured.rdbuf());
    LabRun run;
    run.exit_code = labkit::run_lab(static_cast<int>(argv.size()), argv.data(), {"labXX_test", "a test lab"},
                                    [&](labkit::Lab& lab) {
                                        lab.add_server_options(8080);
                                        lab.parse();
                                        run.server = lab.server();
                                        return labkit::exit_ok;
                                    });
    std::cerr.rdbuf(old);
    run.err = captured.str();
    return run;
}

std::size_t line_count(const std::string& text) { return portlab::test::lines_of(text).size(); }

}  // namespace

TEST_CASE("bad --port and --bind values are a one-line usage error with exit 2", "[labkit][args]") {
    const auto [args, mentions] = GENERATE(table<std::vector<std::string>, std::string>({
        {{"--port", "70000"}, "--port"},
        {{"--port", "65536"}, "--port"},
        {{"--port", "-1"}, "--port"},
        {{"--port", "abc"}, "--port"},
        {{"--port", ""}, "--port"},
        {{"--port", "0x50"}, "--port"},
        {{"--bind", "nope"}, "--bind"},
        {{"--bind", "256.0.0.1"}, "--bind"},
        {{"--bind", "localhost"}, "--bind"},
        {{"--bind", "10.1.2.3"}, "--allow-non-loopback"},
        {{"--bind", "::"}, "--allow-non-loopback"},
        {{"--no-such-flag"}, "no-such-flag"},
    }));
    CAPTURE(args);
    const auto run = run_parsing_lab(args);
    CHECK(run.exit_code == labkit::exit_usage);
    CHECK(line_count(run.err) == 1);
    CHECK_THAT(run.err, Catch::StartsWith("labXX_test: ") && Catch::Contains(mentions) && Catch::Contains("(try --help)"));
}

TEST_CASE("good server options parse to the values given", "[labkit][args]") {
    SECTION("defaults: 127.0.0.1 and the lab's port") {
        const auto run = run_parsing_lab({});
        CHECK(run.exit_code == 0);
        CHECK(run.server.bind == IpAddress::v4(127, 0, 0, 1));
        CHECK(run.server.port == 8080);
        CHECK(run.server.default_port == 8080);
    }
    SECTION("another loopback address, port 0, IPv6 loopback") {
        CHECK(run_parsing_lab({"--bind", "127.0.0.2", "--port", "0"}).server.endpoint() ==
              Endpoint{IpAddress::v4(127, 0, 0, 2), 0});
        CHECK(run_parsing_lab({"--bind", "::1", "--port", "65535"}).server.endpoint() ==
              Endpoint{IpAddress::loopback_v6(), 65535});
    }
    SECTION("a non-loopback address with --allow-non-loopback warns on stderr") {
        const auto run = run_parsing_lab({"--bind", "192.0.2.1", "--allow-non-loopback"});
        CHECK(run.exit_code == 0);
        CHECK(run.server.bind == IpAddress::v4(192, 0, 2, 1));
        CHECK_THAT(run.err, Catch::Contains("warning"));
    }
}

TEST_CASE("errno_name gives the <cerrno> constant's name", "[labkit][errno]") {
    const auto [value, name] = GENERATE(table<int, std::string>({
        {EADDRINUSE, "EADDRINUSE"},
        {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
        {EACCES, "EACCES"},
        {ECONNREFUSED, "ECONNREFUSED"},
        {EMSGSIZE, "EMSGSIZE"},
        {ENETUNREACH, "ENETUNREACH"},
    }));
    CAPTURE(value);
    const std::error_code system(value, std::system_category());
    const std::error_code generic(value, std::generic_category());
    const std::error_code from_asio(value, asio::error::get_system_category());
    CHECK(labkit::errno_name(system) == name);
    CHECK(labkit::errno_name(generic) == name);
    CHECK(labkit::errno_name(from_asio) == name);
    CHECK(labkit::is_errno(from_asio, value));
    CHECK_FALSE(labkit::is_errno(from_asio, value + 1));
    CHECK(labkit::describe_error(system) == name + " (" + std::strerror(value) + ")");
}

TEST_CASE("errno_name for codes without an errno", "[labkit][errno]") {
    CHECK(labkit::errno_name(std::error_code{}).empty());
    CHECK(labkit::errno_name(asio::error::eof) == "EOF");
    CHECK(labkit::errno_name(asio::error::make_error_code(asio::error::address_in_use)) == "EADDRINUSE");
}

TEST_CASE("Asio endpoints and portlab endpoints convert both ways", "[labkit][asio]") {
    const auto v4 = Endpoint::parse("127.0.0.2:8080").value();
    const auto as_tcp = labkit::to_tcp_endpoint(v4);
    CHECK(as_tcp.address().to_string() == "127.0.0.2");
    CHECK(as_tcp.port() == 8080);
    CHECK(labkit::to_endpoint(as_tcp) == v4);

    const auto v6 = Endpoint::parse("[2001:db8::1]:53").value();
    const auto as_udp = labkit::to_udp_endpoint(v6);
    CHECK(as_udp.address().to_string() == "2001:db8::1");
    CHECK(as_udp.port() == 53);
    CHECK(labkit::to_endpoint(as_udp) == v6);
}

TEST_CASE("peer endpoints: loopback only unless allowed", "[labkit][args]") {
    CHECK(labkit::parse_peer_endpoint("127.0.0.1:8080", false).value() == Endpoint{IpAddress::v4(127, 0, 0, 1), 8080});
    CHECK(labkit::parse_peer_endpoint("localhost:80", false).value() == Endpoint{IpAddress::v4(127, 0, 0, 1), 80});
    CHECK(labkit::parse_peer_endpoint("[::1]:9", false).value() == Endpoint{IpAddress::loopback_v6(), 9});
    CHECK_FALSE(labkit::parse_peer_endpoint("192.0.2.1:80", false).has_value());
    CHECK(labkit::parse_peer_endpoint("192.0.2.1:80", true).has_value());
    CHECK_FALSE(labkit::parse_peer_endpoint("127.0.0.1:0", false).has_value());
    CHECK_FALSE(labkit::parse_peer_endpoint("127.0.0.1:70000", false).has_value());
    CHECK_FALSE(labkit::parse_peer_endpoint("localhost:abc", false).has_value());
    CHECK_FALSE(labkit::parse_peer_endpoint("", false).has_value());
}

TEST_CASE("the trace recorder writes a trace that read_trace_file accepts", "[labkit][trace]") {
    const portlab::test::TempFile file("run.jsonl");
    trace::TraceHeader header;
    header.source = "lab";
    header.generator = "labXX_test 0";
    auto recorder = labkit::TraceRecorder::to_file(file.path, header, std::chrono::steady_clock::now());
    REQUIRE(recorder.has_value());
    CHECK(recorder->enabled());

    const Endpoint server{IpAddress::v4(127, 0, 0, 1), 8080};
    const Endpoint client{IpAddress::v4(127, 0, 0, 1), 40000};
    const auto listener = recorder->socket_created("server", Protocol::tcp, IpFamily::v4);
    recorder->bound("server", listener, server, trace::BindHow::explicit_port);
    recorder->listening("server", listener, 128);
    const auto connector = recorder->socket_created("client", Protocol::tcp, IpFamily::v4);
    recorder->connect_started("client", connector, server);
    recorder->ephemeral_assigned("client", connector, 40000, PortRange{32768, 60999});
    const auto accepted = recorder->accepted("server", listener, {server, client});
    recorder->state_changed("client", connector, TcpState::established, TcpState::fin_wait_1, "close() called");
    recorder->call_failed("client", std::nullopt, "connect", std::error_code(EADDRNOTAVAIL, std::system_category()));
    recorder->closed("server", accepted);
    recorder->note("done");
    REQUIRE(recorder->finish().has_value());

    const auto read = trace::read_trace_file(file.path);
    REQUIRE(read.has_value());
    CHECK(read->header.source == "lab");
    REQUIRE(read->events.size() == 11);
    // Fresh ids, never reused.
    CHECK(listener.value != connector.value);
    CHECK(accepted.value != listener.value);
    CHECK(accepted.value != connector.value);
    CHECK(read->events[0].host == "server");
    CHECK(read->events[3].host == "client");
    CHECK(read->events[10].host == "localhost");
    const auto& assigned = std::get<trace::EphemeralAssigned>(read->events[5].body);
    CHECK(assigned.parity == trace::Parity::even);
    CHECK(assigned.range_low == 32768);
    const auto& failed = std::get<trace::CallFailed>(read->events[8].body);
    CHECK(failed.errno_name == "EADDRNOTAVAIL");
    CHECK(failed.message == std::strerror(EADDRNOTAVAIL));
    for (std::size_t i = 1; i < read->events.size(); ++i) CHECK(read->events[i - 1].t_us <= read->events[i].t_us);
}

TEST_CASE("without --trace the recorder does nothing", "[labkit][trace]") {
    labkit::TraceRecorder recorder;
    CHECK_FALSE(recorder.enabled());
    const auto id = recorder.socket_created("server", Protocol::udp, IpFamily::v6);
    recorder.note("nobody hears this");
    CHECK(id.value == 0);
    CHECK(recorder.finish().has_value());
}

TEST_CASE("a trace file in an unwritable place is a usage error", "[labkit][trace]") {
    std::vector<std::string> args = {"labXX_test", "--trace", "/nonexistent-dir/run.jsonl"};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    std::ostringstream captured;
    auto* const old = std::cerr.rdbuf(captured.rdbuf());
    const int code = labkit::run_lab(3, argv.data(), {"labXX_test", "t"}, [](labkit::Lab& lab) {
        lab.parse();
        return 0;
    });
    std::cerr.rdbuf(old);
    CHECK(code == labkit::exit_usage);
    CHECK_THAT(captured.str(), Catch::Contains("--trace"));
}

// ---- the observer: one fact, three outputs -------------------------------------------------

namespace {

// An observer narrating into a string and tracing into a file, as a lab's would.
struct Observed {
    test::TempFile file{"observed.jsonl"};
    std::ostringstream narration;
    labkit::Narrator say{narration, false, false, false};
    labkit::TraceRecorder trace =
        labkit::TraceRecorder::to_file(file.path, trace::TraceHeader{trace::format_version, "test", "test_labkit", {}, {}},
                                       std::chrono::steady_clock::now())
            .value();
    labkit::Observer see{say, trace};

    std::vector<trace::Event> events() {
        REQUIRE(trace.finish().has_value());
        auto read = trace::read_trace_file(file.path);
        REQUIRE(read.has_value());
        return read->events;
    }
};

template <class Body>
std::vector<Body> bodies(const std::vector<trace::Event>& events) {
    std::vector<Body> found;
    for (const auto& event : events)
        if (const auto* body = std::get_if<Body>(&event.body)) found.push_back(*body);
    return found;
}

}  // namespace

TEST_CASE("a port connect() chose is one fact: a kernel line, bound + ephemeral_assigned, one JSON entry",
          "[labkit][observe]") {
    Observed o;
    const auto client = o.see.declare({"client", {IpAddress::loopback_v4()}, "client"});
    const auto ref = o.see.open(client, Protocol::tcp, IpFamily::v4);
    const Endpoint server{IpAddress::loopback_v4(), 8080};
    const Endpoint local{IpAddress::loopback_v4(), 40002};
    o.see.record(labkit::fact::Connecting{ref, server}, {"", "/client"});
    o.see.record(labkit::fact::Bound{ref, local, trace::BindHow::ephemeral, PortRange{40000, 40009}}, {{}, "/client"});

    // Narration: the kit's sentence, from the same value.
    CHECK_THAT(o.narration.str(), Catch::Contains("kernel: bound to 127.0.0.1:40002") &&
                                      Catch::Contains("inside 40000-40009"));
    // --json: both facts merged at /client.
    const auto& entry = o.see.document().at("client");
    CHECK(entry.at("local").at("port") == 40002);
    CHECK(entry.at("remote").at("port") == 8080);
    CHECK(entry.at("how") == "ephemeral");
    CHECK(entry.at("in_range") == true);
    // The trace: created, connect_started, SYN-SENT (inferred), bound, ephemeral_assigned.
    const auto events = o.events();
    REQUIRE(bodies<trace::Bound>(events).size() == 1);
    CHECK(bodies<trace::Bound>(events)[0].endpoint == local);
    CHECK(bodies<trace::Bound>(events)[0].how == trace::BindHow::ephemeral);
    const auto assigned = bodies<trace::EphemeralAssigned>(events);
    REQUIRE(assigned.size() == 1);
    CHECK(assigned[0].port == 40002);
    CHECK(assigned[0].range_low == 40000);
    CHECK(assigned[0].range_high == 40009);
    CHECK(assigned[0].algorithm == "linux-hash-connect");
    CHECK(assigned[0].parity == trace::Parity::even);
    const auto states = bodies<trace::StateChanged>(events);
    REQUIRE(states.size() == 1);
    CHECK(states[0].to == TcpState::syn_sent);
    CHECK(bodies<trace::StateChanged>(events)[0].evidence == trace::Evidence::inferred);
    REQUIRE(bodies<trace::HostAdded>(events).size() == 1);
    CHECK(bodies<trace::HostAdded>(events)[0].role == "client");
    for (const auto& event : events) CHECK(event.host == "client");
}

TEST_CASE("a state is recorded once, with the state before it, and close() infers FIN-WAIT-1", "[labkit][observe]") {
    Observed o;
    const auto host = o.see.declare({"server", {IpAddress::loopback_v4()}, "server"});
    const auto listener = o.see.open(host, Protocol::tcp, IpFamily::v4);
    const auto accepted = o.see.record(labkit::fact::Accepted{listener, {{IpAddress::loopback_v4(), 8080},
                                                                          {IpAddress::loopback_v4(), 40002}}},
                                       labkit::quietly);
    CHECK(accepted.id != listener.id);
    CHECK(o.see.state_of(accepted) == TcpState::established);
    o.see.record(labkit::fact::State{accepted, TcpState::established, labkit::Evidence::observed, "TCP_INFO"});
    o.see.record(labkit::fact::Closed{accepted}, labkit::quietly);
    const auto states = bodies<trace::StateChanged>(o.events());
    REQUIRE(states.size() == 1);  // ESTABLISHED was known from accept(): nothing new to say
    CHECK(states[0].from == TcpState::established);
    CHECK(states[0].to == TcpState::fin_wait_1);
}

TEST_CASE("read_state reads the kernel's state with TCP_INFO", "[labkit][observe]") {
    test::sockets::Fd fd(socket(AF_INET, SOCK_STREAM, 0));
    auto address = test::sockets::loopback(0);
    REQUIRE(bind(fd.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(labkit::tcp_state_of(fd.fd).value() == TcpState::closed);
    REQUIRE(listen(fd.fd, 1) == 0);
    Observed o;
    const auto host = o.see.declare({"server", {IpAddress::loopback_v4()}, "server"});
    const auto ref = o.see.open(host, Protocol::tcp, IpFamily::v4);
    CHECK(o.see.read_state(ref, fd.fd) == TcpState::listen);
    const auto states = bodies<trace::StateChanged>(o.events());
    REQUIRE(states.size() == 1);
    CHECK(states[0].to == TcpState::listen);
    CHECK(states[0].evidence == trace::Evidence::observed);
}
