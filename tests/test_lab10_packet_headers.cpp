// Lab 10's decoding against Wireshark's: tshark reads the same capture file and prints
// its own dissection of each header field (-T fields); every value lab10 reports in
// --json must equal tshark's. Two files: one the test writes itself with portlab's
// encoder, and one the lab captured live in its private namespace (--pcap). tshark and
// unshare-capable kernels are required here: without them the test fails.
#include <catch2/catch.hpp>

#include <arpa/inet.h>

#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "portlab/packet.hpp"
#include "portlab/pcap.hpp"
#include "portlab/trace.hpp"
#include "replay/state.hpp"
#include "support.hpp"

using nlohmann::json;
using namespace portlab;
using namespace portlab::test;

namespace {

// tshark's column -> how to read the same value out of one packet of lab10's JSON.
const std::vector<std::string> columns{"ip.src",  "ip.dst",      "ip.len",          "ip.ttl",          "ip.id",
                                       "ip.proto", "tcp.srcport", "tcp.dstport",     "tcp.seq_raw",     "tcp.ack_raw",
                                       "tcp.flags", "tcp.window_size_value", "tcp.urgent_pointer", "udp.srcport",
                                       "udp.dstport", "udp.length"};

std::string lab_value(const json& packet, const std::string& column) {
    const auto number = [](const json& value) { return value.is_null() ? std::string() : std::to_string(value.get<std::uint64_t>()); };
    const auto& ip = packet.at("ip");
    const auto& tcp = packet.at("tcp");
    const auto& udp = packet.at("udp");
    if (column == "ip.src") return ip.at("source");
    if (column == "ip.dst") return ip.at("destination");
    if (column == "ip.len") return number(ip.at("total_length"));
    if (column == "ip.ttl") return number(ip.at("ttl"));
    if (column == "ip.id") return number(ip.at("identification"));
    if (column == "ip.proto") return number(ip.at("protocol"));
    if (column.rfind("tcp.", 0) == 0) {
        if (tcp.is_null()) return "";
        if (column == "tcp.srcport") return number(tcp.at("source_port"));
        if (column == "tcp.dstport") return number(tcp.at("destination_port"));
        if (column == "tcp.seq_raw") return number(tcp.at("sequence"));
        if (column == "tcp.ack_raw") return number(tcp.at("acknowledgment"));
        if (column == "tcp.flags") return number(tcp.at("flags"));
        if (column == "tcp.window_size_value") return number(tcp.at("window"));
        if (column == "tcp.urgent_pointer") return number(tcp.at("urgent_pointer"));
    }
    if (udp.is_null()) return "";
    if (column == "udp.srcport") return number(udp.at("source_port"));
    if (column == "udp.dstport") return number(udp.at("destination_port"));
    return number(udp.at("length"));
}

// tshark prints some fields in hex ("0x0012" for flags, "0x04d2" for ip.id): compare numbers.
std::string normalise(const std::string& text) {
    if (text.empty() || text.find('.') != std::string::npos) return text;  // empty, or an address
    return std::to_string(std::stoull(text, nullptr, 0));
}

// One row of cells per packet, as tshark dissects `path`.
std::vector<std::vector<std::string>> tshark_rows(const std::string& path) {
    std::string command = "tshark -n -r " + shell_quote(path) + " -T fields -E occurrence=f";
    for (const auto& column : columns) command += " -e " + column;
    const auto result = run_command(command, 60);
    INFO("tshark stderr: " << result.err);
    REQUIRE(result.exit_code == 0);
    std::vector<std::vector<std::string>> rows;
    for (const auto& line : lines_of(result.out)) {
        std::vector<std::string> cells;
        std::size_t start = 0;
        while (true) {
            const auto tab = line.find('\t', start);
            cells.push_back(line.substr(start, tab - start));
            if (tab == std::string::npos) break;
            start = tab + 1;
        }
        cells.resize(columns.size());
        rows.push_back(cells);
    }
    return rows;
}

json run_lab10(const std::string& arguments) {
    const auto result = run_command(shell_quote(bin_path("lab10_packet_headers")) + " --json " + arguments, 60);
    INFO("stderr: " << result.err);
    REQUIRE(result.exit_code == 0);
    return json::parse(result.out);
}

void check_against_tshark(const json& facts, const std::string& path) {
    const auto rows = tshark_rows(path);
    const auto& packets = facts.at("packets");
    REQUIRE(facts.at("undecodable").empty());
    REQUIRE(packets.size() == rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
        for (std::size_t c = 0; c < columns.size(); ++c) {
            CAPTURE(i + 1, columns[c], rows[i][c]);
            CHECK(lab_value(packets.at(i), columns[c]) == normalise(rows[i][c]));
        }
    }
}

// RFC 1071 over the TCP/UDP pseudo-header alone (RFC 793 3.1, RFC 768), folded, not
// complemented: what Linux stores before checksum offload finishes the job.
std::uint16_t pseudo_header_sum(const std::string& source, const std::string& destination, int protocol, unsigned length) {
    in_addr a{};
    in_addr b{};
    REQUIRE(inet_pton(AF_INET, source.c_str(), &a) == 1);
    REQUIRE(inet_pton(AF_INET, destination.c_str(), &b) == 1);
    const std::uint32_t s = ntohl(a.s_addr);
    const std::uint32_t d = ntohl(b.s_addr);
    std::uint32_t sum = (s >> 16) + (s & 0xFFFF) + (d >> 16) + (d & 0xFFFF) + static_cast<std::uint32_t>(protocol) + length;
    while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
    return static_cast<std::uint16_t>(sum);
}

// What tshark says of one packet: who sent it to whom (address and port).
struct Ends {
    std::string source, destination;
};

Ends tshark_ends(const std::vector<std::string>& row) {
    const bool tcp = !row[6].empty();
    return {row[0] + ":" + (tcp ? row[6] : row[13]), row[1] + ":" + (tcp ? row[7] : row[14])};
}

// Replays lab10's --trace with the replay model (as portlab-viz does) and checks it
// against tshark's reading of the same capture: one packet event per captured packet, in
// order, with the packet's own endpoints, sent between the hosts `host_of` names for them
// and declared in the trace; and, when `with_sockets`, both ends of every packet are a
// socket of the replayed world at the moment the packet arrives (the trace's sockets are
// the ones the capture shows talking).
void check_trace_against_tshark(const std::string& trace_path, const std::string& capture_path,
                                const std::function<std::string(const std::string& address, const std::string& port)>& host_of,
                                const std::set<std::string>& hosts, bool with_sockets) {
    const auto rows = tshark_rows(capture_path);
    const auto trace = trace::read_trace_file(trace_path);
    INFO((trace ? std::string() : trace.error().message));
    REQUIRE(trace.has_value());
    replay::State world;
    std::size_t packet = 0;
    for (const auto& event : trace->events) {
        world.apply(event);
        const auto* body = std::get_if<trace::Packet>(&event.body);
        if (!body) continue;
        REQUIRE(packet < rows.size());
        const auto& row = rows[packet++];
        CAPTURE(packet);
        const auto info = replay::describe_packet(*body);
        REQUIRE(info.decoded);
        const auto ends = tshark_ends(row);
        CHECK(info.source->to_string() == ends.source);
        CHECK(info.destination->to_string() == ends.destination);
        const bool tcp = !row[6].empty();
        const auto from = host_of(row[0], tcp ? row[6] : row[13]);
        const auto to = host_of(row[1], tcp ? row[7] : row[14]);
        CHECK(body->from_host == from);
        CHECK(body->to_host == to);
        CHECK(event.host == to);
        if (!with_sockets) continue;
        const auto sender = world.find_host(from);
        const auto receiver = world.find_host(to);
        REQUIRE(sender);
        REQUIRE(receiver);
        CHECK(world.socket_for(*sender, *info.protocol, *info.source, *info.destination).has_value());
        CHECK(world.socket_for(*receiver, *info.protocol, *info.destination, *info.source).has_value());
    }
    CHECK(packet == rows.size());
    std::set<std::string> replayed_hosts;
    for (const auto& host : world.hosts()) replayed_hosts.insert(host.name);
    CHECK(replayed_hosts == hosts);  // no phantom "localhost"
}

}  // namespace

TEST_CASE("lab10 decodes a capture written with portlab's encoder as tshark does", "[lab10][tshark]") {
    REQUIRE(tool_available("tshark"));
    const TempFile file("encoded.pcap");
    IpHeader ip;
    ip.source = IpAddress::v4(127, 0, 0, 1);
    ip.destination = IpAddress::v4(127, 0, 0, 2);
    ip.identification = 4660;
    ip.ttl = 61;
    TcpHeader syn;
    syn.source_port = 40002;
    syn.destination_port = 8080;
    syn.sequence = 3'000'000'000u;
    syn.flags = tcp_flag::syn;
    syn.window = 64240;
    syn.options.mss = 1460;
    TcpHeader reply = syn;
    reply.source_port = 8080;
    reply.destination_port = 40002;
    reply.sequence = 17;
    reply.acknowledgment = 3'000'000'001u;
    reply.flags = tcp_flag::syn | tcp_flag::ack;
    IpHeader back = ip;
    std::swap(back.source, back.destination);
    const std::vector<std::uint8_t> hello{'h', 'e', 'l', 'l', 'o'};
    {
        auto writer = pcap::Writer::create(file.path, LinkType::en10mb);
        REQUIRE(writer);
        std::uint64_t t = 1'700'000'000'000'000u;
        for (const auto& packet : {encode_tcp(ip, syn), encode_tcp(back, reply), encode_udp(ip, {5353, 53}, hello)}) {
            REQUIRE(packet);
            REQUIRE(writer->write(pcap::Record::whole(t += 1000, with_link_header(LinkType::en10mb, *packet))));
        }
        REQUIRE(writer->close());
    }
    const TempFile trace_file("read.jsonl");
    const auto facts = run_lab10("--read " + shell_quote(file.path) + " --trace " + shell_quote(trace_file.path));
    check_against_tshark(facts, file.path);
    // The file's hosts are its addresses.
    check_trace_against_tshark(trace_file.path, file.path, [](const std::string& address, const std::string&) { return address; },
                               {"127.0.0.1", "127.0.0.2"}, false);
    // The encoder computed every checksum, so the decoder must call them good.
    for (const auto& packet : facts.at("packets")) CHECK(packet.at("transport_checksum").at("status") == "good");
}

TEST_CASE("lab10's live capture, read back, matches tshark and shows one port pair reversed", "[lab10][tshark][live]") {
    REQUIRE(tool_available("tshark"));
    const TempFile file("live.pcap");
    const TempFile trace_file("live.jsonl");
    const auto live = run_lab10("--port 8080 --pcap " + shell_quote(file.path) + " --trace " + shell_quote(trace_file.path));
    REQUIRE(live.at("mode") == "live");
    check_against_tshark(live, file.path);
    // In the namespace both ends are 127.0.0.1: the server is the end on port 8080.
    check_trace_against_tshark(trace_file.path, file.path,
                               [](const std::string&, const std::string& port) { return port == "8080" ? "server" : "client"; },
                               {"client", "server"}, true);
    const auto reread = run_lab10("--read " + shell_quote(file.path));
    check_against_tshark(reread, file.path);
    CHECK(reread.at("packets").size() == live.at("packets").size());

    // Facts from tshark's columns, not the lab's: the TCP packets use exactly two
    // (source port, destination port) pairs, each the other reversed, one of them 8080.
    const auto rows = tshark_rows(file.path);
    std::set<std::pair<std::string, std::string>> tcp_pairs;
    std::set<std::pair<std::string, std::string>> udp_pairs;
    std::set<std::string> tcp_flags;
    for (const auto& row : rows) {
        if (!row[6].empty()) tcp_pairs.insert({row[6], row[7]});
        if (!row[13].empty()) udp_pairs.insert({row[13], row[14]});
        if (!row[10].empty()) tcp_flags.insert(normalise(row[10]));
    }
    for (const auto* pairs : {&tcp_pairs, &udp_pairs}) {
        REQUIRE(pairs->size() == 2);
        const auto first = *pairs->begin();
        CHECK(pairs->count({first.second, first.first}) == 1);
        CHECK((first.first == "8080" || first.second == "8080"));
    }
    // Handshake and teardown are in the capture: SYN, SYN+ACK, FIN+ACK (RFC 9293 3.5, 3.6).
    CHECK(tcp_flags.count(std::to_string(tcp_flag::syn)) == 1);
    CHECK(tcp_flags.count(std::to_string(tcp_flag::syn | tcp_flag::ack)) == 1);
    CHECK(tcp_flags.count(std::to_string(tcp_flag::fin | tcp_flag::ack)) == 1);
    // The lab's conversation table says the same.
    for (const auto& conversation : live.at("conversations")) {
        const auto& directions = conversation.at("directions");
        REQUIRE(directions.size() == 2);
        CHECK(directions[0].at("source_port") == directions[1].at("destination_port"));
        CHECK(directions[0].at("destination_port") == directions[1].at("source_port"));
    }

    SECTION("on lo the kernel stores only the pseudo-header sum, and the lab says partial_offload") {
        for (const auto& packet : live.at("packets")) {
            const auto& ip = packet.at("ip");
            const unsigned transport_length = ip.at("total_length").get<unsigned>() - 20;  // no IP options here
            CAPTURE(packet.at("summary"));
            const auto& check = packet.at("transport_checksum");
            CHECK(check.at("stored").get<unsigned>() ==
                  pseudo_header_sum(ip.at("source"), ip.at("destination"), ip.at("protocol").get<int>(), transport_length));
            CHECK(check.at("status") == "partial_offload");
            CHECK(ip.at("checksum").at("status") == "good");
        }
    }
}

TEST_CASE("a missing, empty, garbled or truncated capture is one line on stderr and exit status 2", "[lab10][errors]") {
    const TempDir dir;
    {
        std::ofstream(dir.file("garbage.pcap")) << "this is not a capture file at all, just text\n";
        std::ofstream(dir.file("empty.pcap"));
        // A valid pcap header (magic a1b2c3d4, v2.4, snaplen 65535, Ethernet) and a record
        // header that promises 1000 bytes, followed by 3.
        const unsigned char truncated[] = {0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
                                           0, 0, 0, 0, 0, 0, 0, 0, 0xe8, 0x03, 0, 0, 0xe8, 0x03, 0, 0, 1, 2, 3};
        std::ofstream(dir.file("truncated.pcap"), std::ios::binary).write(reinterpret_cast<const char*>(truncated), sizeof(truncated));
    }
    const auto name = GENERATE(as<std::string>{}, "missing.pcap", "garbage.pcap", "empty.pcap", "truncated.pcap");
    CAPTURE(name);
    const auto result = run_command(shell_quote(bin_path("lab10_packet_headers")) + " --json --read " + shell_quote(dir.file(name)), 30);
    CHECK(result.exit_code == 2);
    CHECK(result.out.empty());
    CHECK(lines_of(result.err).size() == 1);
}

TEST_CASE("lab10 follows the lab conventions: --help, one-line usage errors, --step in a pipe, no colour, --trace",
          "[lab10][conventions]") {
    check_lab_conventions({"lab10_packet_headers", true, ""});
}
