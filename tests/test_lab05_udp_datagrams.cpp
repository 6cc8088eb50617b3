// Lab 05 run for real: datagram sizes received must be the sizes this test asked to send;
// ECONNREFUSED and EMSGSIZE must be what this test's own UDP sockets get from the kernel.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernel_vs_replay.hpp"
#include "portlab/trace.hpp"
#include "support.hpp"

using nlohmann::json;
namespace test = portlab::test;

namespace {

const test::LabBinary lab("lab05_udp_datagrams");
using test::sockets::Fd;
using test::sockets::errno_name;
using test::sockets::local_port;
using test::sockets::loopback;

// errno of sendto() of `size` bytes from an unconnected UDP socket to a bound receiver (0 = sent).
int send_size_errno(std::size_t size) {
    const Fd receiver(socket(AF_INET, SOCK_DGRAM, 0));
    auto address = loopback(0);
    REQUIRE(bind(receiver.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    address.sin_port = htons(local_port(receiver.fd));
    const Fd sender(socket(AF_INET, SOCK_DGRAM, 0));
    const std::vector<char> payload(size, 'x');
    return sendto(sender.fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&address), sizeof address) ==
                   static_cast<ssize_t>(size)
               ? 0
               : errno;
}

// A connected UDP socket sends to a port nobody holds; the errno of the next recv().
int closed_port_errno() {
    const Fd probe(socket(AF_INET, SOCK_DGRAM, 0));
    auto address = loopback(0);
    REQUIRE(bind(probe.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    address.sin_port = htons(local_port(probe.fd));
    close(probe.fd);  // the port is free again: nobody holds it now
    const Fd sender(socket(AF_INET, SOCK_DGRAM, 0));
    REQUIRE(connect(sender.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(send(sender.fd, "x", 1, 0) == 1);
    pollfd wait{sender.fd, POLLIN, 0};
    poll(&wait, 1, 2000);  // bounded; on loopback the ICMP error is already queued
    char byte = 0;
    return recv(sender.fd, &byte, 1, MSG_DONTWAIT) >= 0 ? 0 : errno;
}

}  // namespace

TEST_CASE("lab05: each datagram arrives whole, at the size this test asked for", "[lab05][kernel]") {
    const std::vector<int> sizes = {7, 0, 300, 5000, 1, 12345};
    const auto facts = lab.json("--port 0 --sizes 7,0,300,5000,1,12345");
    REQUIRE(facts["received"].size() == sizes.size());
    const int client_port = facts["client"]["local"]["port"];
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        CAPTURE(i);
        // Loopback keeps order, so the i-th receive is the i-th send.
        CHECK(facts["received"][i]["size"] == sizes[i]);
        CHECK(facts["received"][i]["from"]["port"] == client_port);
        CHECK(facts["received"][i]["from"]["address"] == "127.0.0.1");
    }
}

TEST_CASE("lab05: the kernel keeps no connection state for UDP sockets", "[lab05][kernel]") {
    const auto facts = lab.json("--port 0");
    const int server_port = facts["server"]["port"];
    REQUIRE(facts["kernel_table"].is_array());
    bool saw_server = false;
    for (const auto& row : facts["kernel_table"]) {
        CHECK(row["state"] == "UNCONN");
        CHECK(row["remote"]["port"] == 0);
        if (row["local"]["port"] == server_port) saw_server = true;
    }
    CHECK(saw_server);
    // connect() on UDP only records the peer: ss calls it ESTAB, with the server as remote.
    const auto& connected = facts["connected_client"];
    CHECK(connected["remote"]["port"] == server_port);
    REQUIRE(connected["kernel_table"].size() == 1);
    CHECK(connected["kernel_table"][0]["state"] == "ESTAB");
    CHECK(connected["reply_size"] == 5);
}

TEST_CASE("lab05: a connected socket gets the ECONNREFUSED this test's own socket gets", "[lab05][kernel]") {
    const auto facts = lab.json("--port 0");
    const int expected = closed_port_errno();
    CHECK(expected == ECONNREFUSED);
    const auto& closed = facts["closed_port"];
    CHECK(closed["connect_errno"].is_null());  // no handshake: connect() to a closed port succeeds
    CHECK(closed["send_errno"].is_null());
    CHECK(closed["receive_errno"] == errno_name(expected));
    CHECK(closed["unconnected_send_errno"].is_null());
    CHECK(closed["unconnected_receive_errno"] == errno_name(EAGAIN));  // Linux tells only connected sockets
    CHECK(facts["connected_client"]["stranger_errno"] == errno_name(expected));
}

TEST_CASE("lab05: 65507 bytes pass and 65508 are refused, as for this test's own socket", "[lab05][kernel]") {
    const auto facts = lab.json("--port 0");
    CHECK(send_size_errno(65507) == 0);
    CHECK(send_size_errno(65508) == EMSGSIZE);
    const auto& limit = facts["size_limit"];
    CHECK(limit["max_payload"] == 65535 - 20 - 8);  // RFC 791 total length, 20-byte IPv4 header, RFC 768 8-byte header
    REQUIRE(limit["attempts"].size() == 2);
    CHECK(limit["attempts"][0]["size"] == 65507);
    CHECK(limit["attempts"][0]["errno_name"].is_null());
    CHECK(limit["attempts"][0]["received_size"] == 65507);
    CHECK(limit["attempts"][1]["size"] == 65508);
    CHECK(limit["attempts"][1]["errno_name"] == errno_name(send_size_errno(65508)));
}

TEST_CASE("lab05: UDP's checksum sits at byte 6 of its header and the kernel drops a wrong one", "[lab05][kernel]") {
    const auto facts = lab.json("--port 0");
    const auto& checksum = facts["checksum"];
    CHECK(checksum["udp_header_offset"] == 20);  // after the 20-byte IPv4 header (RFC 791)
    CHECK(checksum["checksum_field_offset"] == 6);  // RFC 768: ports, length, checksum
    CHECK(checksum["status"] == "good");
    CHECK(checksum["status_one_bit_flipped"] == "bad");
    const bool namespaces = test::run_command("unshare -rn true", 10).exit_code == 0;
    if (!namespaces) {
        CHECK(checksum["kernel_check"].is_null());
        WARN("private namespaces unavailable; the kernel part is skipped by the lab too");
        return;
    }
    const auto& kernel = checksum["kernel_check"];
    REQUIRE(kernel.is_object());
    CHECK(kernel["spoiled_delivered"] == false);
    CHECK(kernel["good_delivered"] == true);
    CHECK(kernel["in_csum_errors_after"].get<int>() == kernel["in_csum_errors_before"].get<int>() + 1);
}

TEST_CASE("lab05's replayed trace holds the UDP sockets, ports and peers the kernel holds at every step",
          "[lab05][trace][replay]") {
    const test::TempDir dir;
    const auto path = dir.file("lab05.jsonl");
    test::PausedRun lab_run(test::bin_path("lab05_udp_datagrams"), {"--port", "0", "--trace", path});
    test::KernelWitness kernel(lab_run.pid(), /*udp=*/true);
    const std::set<std::string> elsewhere{"private-netns"};  // its sockets live in another namespace
    const auto compared = test::compare_at_each_pause(lab_run, kernel, path, elsewhere);
    // Pauses before steps 2-9: the server; + the client (bound by its first sendto()),
    // three times; + the connected client and the stranger; + the socket connected to a
    // closed port, three times.
    CHECK(compared == std::vector<std::size_t>{1, 2, 2, 2, 4, 5, 5, 5});
    const auto world = test::replay_of(path);
    test::check_same_sockets(test::replayed_sockets(world, elsewhere), kernel.now(), "the end");
    CHECK(test::replayed_sockets(world, elsewhere).empty());
    CHECK_FALSE(world.find_host("localhost").has_value());

    // The refusals are tied to the sockets that met them.
    const auto trace = portlab::trace::read_trace_file(path);
    REQUIRE(trace.has_value());
    std::multiset<std::string> errors;
    for (const auto& event : trace->events)
        if (const auto* failed = std::get_if<portlab::trace::CallFailed>(&event.body)) {
            CHECK(failed->socket.has_value());
            errors.insert(failed->call + " " + failed->errno_name);
        }
    CHECK(errors.count("recv " + errno_name(ECONNREFUSED)) == 2);  // the stranger and the socket connected to a closed port
    CHECK(errors.count("sendto " + errno_name(EMSGSIZE)) == 1);
}

TEST_CASE("lab05 usage errors exit 2 with one line on stderr", "[lab05][usage]") {
    const auto args = GENERATE(as<std::string>{}, "--sizes 65508", "--sizes -1", "--sizes x", "--sizes 60000,60000",
                               "--port 65536", "--bind ::2", "--bogus");
    CAPTURE(args);
    test::check_usage_error(lab.run(args), "lab05_udp_datagrams");
}

TEST_CASE("lab05: a busy default port gives way to one the kernel chooses, and a busy --port is a clear error", "[lab05][usage]") {
    test::check_busy_default_port(lab, 7405, SOCK_DGRAM);
}

TEST_CASE("lab05 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab05][conventions]") {
    test::check_lab_conventions({"lab05_udp_datagrams", true, "--port 0"});
}
