// A capture's conversations held to tshark's: `tshark -z conv,tcp -z conv,udp` reads
// the same capture file, and every conversation it lists must be one portlab found,
// with the same frames and bytes each way.
#include <catch2/catch.hpp>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "portlab/conversation.hpp"
#include "portlab/packet.hpp"
#include "portlab/pcap.hpp"
#include "support.hpp"

using namespace portlab;

namespace {

const IpAddress client_address = IpAddress::v4(192, 0, 2, 10);   // documentation addresses (RFC 5737)
const IpAddress server_address = IpAddress::v4(198, 51, 100, 20);

Bytes tcp(bool from_client, Port client_port, std::uint8_t flags, std::string_view payload = {}) {
    const IpHeader ip = from_client ? IpHeader{client_address, server_address} : IpHeader{server_address, client_address};
    TcpHeader header;
    header.source_port = from_client ? client_port : Port{80};
    header.destination_port = from_client ? Port{80} : client_port;
    header.flags = flags;
    return encode_tcp(ip, header, std::span(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size())).value();
}

Bytes udp(bool from_client, std::string_view payload) {
    const IpHeader ip = from_client ? IpHeader{client_address, server_address} : IpHeader{server_address, client_address};
    const UdpHeader header = from_client ? UdpHeader{5353, 53} : UdpHeader{53, 5353};
    return encode_udp(ip, header, std::span(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size())).value();
}

// Two TCP connections from different client ports (two conversations, as a 4-tuple
// makes them), a UDP question and answer, and a packet that is no conversation.
std::vector<pcap::Record> sample_records() {
    using namespace tcp_flag;
    const std::vector<Bytes> packets{
        tcp(true, 40001, syn),        tcp(false, 40001, syn | ack),       tcp(true, 40001, ack),
        udp(true, "question"),        tcp(true, 40002, syn),              tcp(true, 40001, psh | ack, "GET / HTTP/1.0\r\n\r\n"),
        udp(false, "a longer answer"), tcp(false, 40001, psh | ack, "HTTP/1.0 200 OK\r\n\r\nhello"),
        tcp(false, 40002, rst | ack), Bytes{0x45, 0x00},  // cut short: decodes as nothing
        tcp(true, 40001, fin | ack),
    };
    std::vector<pcap::Record> records;
    std::uint64_t time_us = 1'700'000'000'000'000;
    for (const auto& packet : packets) records.push_back(pcap::Record::whole(time_us += 1000, packet));
    return records;
}

struct Counts {
    std::size_t frames_a_to_b = 0, bytes_a_to_b = 0, frames_b_to_a = 0, bytes_b_to_a = 0;
    friend bool operator==(const Counts&, const Counts&) = default;
};

// tshark 4.0's table lines: "A <-> B  frames bytes-unit  frames bytes-unit  ..." where the first
// pair is "<-" (B to A) and the second "->" (A to B); the byte counts here stay below 1 kB,
// so each is "<n> bytes".
std::map<std::string, Counts> tshark_conversations(const std::string& path) {
    const auto result = test::run_command("tshark -n -r " + test::shell_quote(path) + " -q -z conv,tcp -z conv,udp", 120);
    INFO("tshark stderr: " << result.err);
    REQUIRE(result.exit_code == 0);
    std::map<std::string, Counts> found;
    for (const auto& line : test::lines_of(result.out)) {
        std::istringstream words(line);
        std::string a, arrow, b, unit_in, unit_out;
        Counts counts;
        if (!(words >> a >> arrow >> b) || arrow != "<->") continue;
        REQUIRE(words >> counts.frames_b_to_a >> counts.bytes_b_to_a >> unit_in >> counts.frames_a_to_b >> counts.bytes_a_to_b >> unit_out);
        REQUIRE(unit_in == "bytes");
        REQUIRE(unit_out == "bytes");
        found[a + " " + b] = counts;
    }
    return found;
}

}  // namespace

TEST_CASE("conversations are tshark's: one per 4-tuple and protocol, frames and bytes each way", "[conversation][tshark]") {
    if (!test::tool_available("tshark")) FAIL("tshark is not installed: run tools/setup (this test is required, not optional)");
    const auto records = sample_records();
    const test::TempDir dir;
    const std::string path = dir.file("conversations.pcap");
    {
        auto writer = pcap::Writer::create(path, LinkType::raw);
        REQUIRE(writer);
        for (const auto& record : records) REQUIRE(writer->write(record));
        REQUIRE(writer->close());
    }
    const auto theirs = tshark_conversations(path);
    const auto ours = find_conversations(LinkType::raw, records);
    REQUIRE(ours.size() == 3);
    CHECK(theirs.size() == ours.size());
    for (const auto& conversation : ours) {
        const Counts counts{conversation.packets_a_to_b, conversation.bytes_a_to_b, conversation.packets_b_to_a,
                            conversation.bytes_b_to_a};
        const std::string ends = conversation.a.to_string() + " " + conversation.b.to_string();
        CAPTURE(ends);
        const auto found = theirs.find(ends);
        REQUIRE(found != theirs.end());  // tshark's A is the side that sent first, as ours
        CHECK(found->second == counts);
    }
    // Ours are in order of first packet, with the records' indices.
    CHECK(ours[0].a.to_string() == "192.0.2.10:40001");
    CHECK(ours[0].first_index == 0);
    CHECK(ours[0].last_index == 10);
    CHECK(ours[1].protocol == Protocol::udp);
    CHECK(ours[1].first_index == 3);
    CHECK(ours[2].a.to_string() == "192.0.2.10:40002");
    CHECK(ours[2].packets() == 2);
}

TEST_CASE("a conversation table skips what carries no TCP or UDP and counts each direction", "[conversation]") {
    ConversationTable table;
    const auto syn = decode_ip(tcp(true, 40001, tcp_flag::syn)).value();
    const auto syn_ack = decode_ip(tcp(false, 40001, tcp_flag::syn | tcp_flag::ack)).value();
    const auto icmp = decode_ip(encode_icmp_unreachable(IpHeader{server_address, client_address}, 3,
                                                        tcp(true, 40001, tcp_flag::syn)).value()).value();
    CHECK(table.add(7, syn, 60));
    CHECK_FALSE(table.add(8, icmp, 70));
    CHECK(table.add(9, syn_ack, 64));
    REQUIRE(table.conversations().size() == 1);
    const auto& c = table.conversations().front();
    CHECK(c.a.to_string() == "192.0.2.10:40001");
    CHECK(c.b.to_string() == "198.51.100.20:80");
    CHECK(c.packets_a_to_b == 1);
    CHECK(c.packets_b_to_a == 1);
    CHECK(c.bytes() == 124);
    CHECK(c.first_index == 7);
    CHECK(c.last_index == 9);
}
