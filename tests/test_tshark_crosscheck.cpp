// Wireshark as the independent judge: packets portlab encodes are written to a
// capture file, tshark dissects them, and every field tshark reports must equal the
// value this test put into the headers, with every checksum "Good". tshark is a
// required test peer (tools/setup installs it); without it the test fails.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "portlab/packet.hpp"
#include "portlab/pcap.hpp"
#include "support.hpp"

using namespace portlab;
namespace fs = std::filesystem;

namespace {

// The columns asked of tshark, in order. A field that appears more than once in a
// packet (the outer and the quoted IP header of an ICMP error) comes back as
// comma-separated values, so columns are separated by tabs.
const std::vector<std::string> columns{
    "ip.len", "ip.ttl", "ip.id", "ip.checksum.status", "ipv6.plen", "ipv6.flow", "ipv6.hlim",
    "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw", "tcp.len",
    "tcp.window_size_value", "tcp.urgent_pointer", "tcp.checksum.status", "tcp.option_kind",
    "tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr", "udp.srcport", "udp.dstport", "udp.length", "udp.checksum.status",
    "icmp.type", "icmp.code", "icmp.checksum.status", "icmpv6.type", "icmpv6.code", "icmpv6.checksum.status",
};

const std::vector<std::string> checksum_columns{"ip.checksum.status", "tcp.checksum.status", "udp.checksum.status",
                                                "icmp.checksum.status", "icmpv6.checksum.status"};

struct Case {
    std::string name;
    Bytes packet;
    std::map<std::string, std::string> expected;  // column -> tshark's text for it
    std::vector<std::string> checksums;           // status columns that must read "Good"
};

// The number tshark prints for a "Good" checksum status of each field, read from
// its own value table (`tshark -G values`) rather than assumed: in 4.0 it is 1.
std::map<std::string, std::string> good_status_numbers(const std::vector<std::string>& fields) {
    std::map<std::string, std::string> good;
    for (const auto& field : fields) good[field] = "<no Good value for " + field + " in tshark -G values>";
    const auto table = test::run_command("tshark -G values 2>/dev/null | grep checksum.status");
    for (const auto& line : test::lines_of(table.out)) {
        std::vector<std::string> parts;
        std::istringstream cells(line);
        std::string cell;
        while (std::getline(cells, cell, '\t')) parts.push_back(cell);
        if (parts.size() == 4 && parts[0] == "V" && good.count(parts[1]) && parts[3] == "Good") good[parts[1]] = parts[2];
    }
    return good;
}

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream stream(text);
    while (std::getline(stream, part, separator)) parts.push_back(part);
    if (!text.empty() && text.back() == separator) parts.emplace_back();
    return parts;
}

Bytes text_bytes(std::string_view text) { return Bytes(text.begin(), text.end()); }

// tshark prints tcp.flags, a 12-bit field shown in hex, with four hex digits.
std::string flags_hex(std::uint8_t flags) {
    char text[8];
    std::snprintf(text, sizeof text, "0x%04x", flags);
    return text;
}

// The columns every TCP case shares, from the header the test built.
std::map<std::string, std::string> tcp_expectations(const TcpHeader& tcp, std::size_t payload_size) {
    std::map<std::string, std::string> expected{
        {"tcp.srcport", std::to_string(tcp.source_port)},
        {"tcp.dstport", std::to_string(tcp.destination_port)},
        {"tcp.flags", flags_hex(tcp.flags)},
        {"tcp.seq_raw", std::to_string(tcp.sequence)},
        {"tcp.len", std::to_string(payload_size)},
        {"tcp.window_size_value", std::to_string(tcp.window)},
        {"tcp.urgent_pointer", std::to_string(tcp.urgent_pointer)},
    };
    if (tcp.flags & tcp_flag::ack) expected["tcp.ack_raw"] = std::to_string(tcp.acknowledgment);
    if (tcp.options.mss) expected["tcp.options.mss_val"] = std::to_string(*tcp.options.mss);
    if (tcp.options.window_scale) expected["tcp.options.wscale.shift"] = std::to_string(*tcp.options.window_scale);
    if (tcp.options.timestamps) {
        expected["tcp.options.timestamp.tsval"] = std::to_string(tcp.options.timestamps->first);
        expected["tcp.options.timestamp.tsecr"] = std::to_string(tcp.options.timestamps->second);
    }
    return expected;
}

std::vector<Case> build_cases() {
    std::vector<Case> cases;
    IpHeader client{IpAddress::loopback_v4(), IpAddress::loopback_v4()};
    client.identification = 0x1234;
    client.ttl = 64;
    IpHeader server = client;
    server.identification = 0;

    auto add_tcp = [&](std::string name, const IpHeader& ip, const TcpHeader& tcp, const Bytes& payload,
                       std::string option_kinds) {
        Case c{std::move(name), encode_tcp(ip, tcp, payload).value(), tcp_expectations(tcp, payload.size()), {}};
        if (!option_kinds.empty()) c.expected["tcp.option_kind"] = option_kinds;
        if (ip.family() == IpFamily::v4) {
            c.expected["ip.len"] = std::to_string(c.packet.size());
            c.expected["ip.ttl"] = std::to_string(ip.ttl);
            c.checksums = {"ip.checksum.status", "tcp.checksum.status"};
        } else {
            c.expected["ipv6.plen"] = std::to_string(c.packet.size() - 40);
            c.expected["ipv6.hlim"] = std::to_string(ip.ttl);
            c.checksums = {"tcp.checksum.status"};
        }
        cases.push_back(std::move(c));
    };

    // The handshake, a data segment and the close, as a Linux client and server send them.
    TcpOptions syn_options;
    syn_options.mss = 65495;
    syn_options.sack_permitted = true;
    syn_options.timestamps = std::pair{12345u, 0u};
    syn_options.window_scale = 7;
    // RFC 9293 3.2 option kinds: 2 MSS, 4 SACK-permitted, 8 timestamps, 1 NOP, 3 window scale.
    add_tcp("SYN with MSS, SACK-permitted, timestamps, window scale", client,
            TcpHeader{40002, 8080, 1000, 0, tcp_flag::syn, 65495, 0, syn_options}, {}, "2,4,8,1,3");
    TcpOptions syn_ack_options = syn_options;
    syn_ack_options.timestamps = std::pair{777u, 12345u};
    add_tcp("SYN-ACK", server, TcpHeader{8080, 40002, 5000, 1001, tcp_flag::syn | tcp_flag::ack, 65483, 0, syn_ack_options},
            {}, "2,4,8,1,3");
    TcpOptions data_options;
    data_options.timestamps = std::pair{12400u, 777u};
    add_tcp("data with payload", client,
            TcpHeader{40002, 8080, 1001, 5001, tcp_flag::psh | tcp_flag::ack, 512, 0, data_options},
            text_bytes("hello, port 8080\n"), "1,1,8");
    add_tcp("FIN-ACK", client, TcpHeader{40002, 8080, 1018, 5001, tcp_flag::fin | tcp_flag::ack, 512, 0, {}}, {}, "");
    add_tcp("RST", server, TcpHeader{8080, 40002, 5001, 0, tcp_flag::rst, 0, 0, {}}, {}, "");
    add_tcp("every flag, ECE/CWR/URG included", client, TcpHeader{40002, 8080, 1018, 5001, 0xff, 100, 1, {}},
            text_bytes("!"), "");

    IpHeader v6{IpAddress::loopback_v6(), IpAddress::loopback_v6()};
    v6.flow_label = 0xabcde;
    v6.ttl = 64;
    add_tcp("SYN over IPv6", v6, TcpHeader{40004, 443, 77, 0, tcp_flag::syn, 65476, 0, syn_options}, {}, "2,4,8,1,3");

    // UDP: a query over IPv4 and over IPv6.
    const Bytes udp4_payload = text_bytes("query");
    const UdpHeader udp4{40000, 53};
    const Bytes udp4_packet = encode_udp(client, udp4, udp4_payload).value();
    cases.push_back(Case{"UDP over IPv4", udp4_packet,
                         {{"udp.srcport", "40000"}, {"udp.dstport", "53"}, {"udp.length", std::to_string(8 + udp4_payload.size())},
                          {"ip.len", std::to_string(udp4_packet.size())}},
                         {"ip.checksum.status", "udp.checksum.status"}});
    const Bytes udp6_payload = text_bytes("v6 datagram");
    const Bytes udp6_packet = encode_udp(v6, UdpHeader{40001, 5353}, udp6_payload).value();
    cases.push_back(Case{"UDP over IPv6", udp6_packet,
                         {{"udp.srcport", "40001"}, {"udp.dstport", "5353"}, {"udp.length", std::to_string(8 + udp6_payload.size())},
                          {"ipv6.plen", std::to_string(8 + udp6_payload.size())}},
                         {"udp.checksum.status"}});

    // Port unreachable, quoting the UDP datagrams above. tshark dissects the quoted
    // headers too, so ip.len and the UDP ports come back from the quote.
    const Bytes icmp4 = encode_port_unreachable(server, udp4_packet).value();
    cases.push_back(Case{"ICMP port unreachable quoting UDP", icmp4,
                         {{"icmp.type", "3"}, {"icmp.code", "3"}, {"udp.srcport", "40000"}, {"udp.dstport", "53"},
                          {"ip.len", std::to_string(icmp4.size()) + "," + std::to_string(udp4_packet.size())}},
                         {"ip.checksum.status", "icmp.checksum.status"}});
    const Bytes icmp6 = encode_port_unreachable(v6, udp6_packet).value();
    cases.push_back(Case{"ICMPv6 port unreachable quoting UDP", icmp6,
                         {{"icmpv6.type", "1"}, {"icmpv6.code", "4"}, {"udp.srcport", "40001"}, {"udp.dstport", "5353"},
                          {"ipv6.plen", std::to_string(icmp6.size() - 40) + "," + std::to_string(8 + udp6_payload.size())}},
                         {"icmpv6.checksum.status"}});
    return cases;
}

}  // namespace

TEST_CASE("tshark dissects portlab's packets to the values put in them, with good checksums", "[packet][tshark]") {
    if (!test::tool_available("tshark")) FAIL("tshark is not installed: run tools/setup (this test is required, not optional)");

    const auto link_type = GENERATE(LinkType::raw, LinkType::en10mb);
    CAPTURE(static_cast<int>(link_type));
    const test::TempDir dir;
    const std::string capture_path = (dir.path() / "packets.pcap").string();
    const std::vector<Case> cases = build_cases();
    {
        auto writer = pcap::Writer::create(capture_path, link_type);
        REQUIRE(writer);
        std::uint64_t time_us = 1'700'000'000'000'000;
        for (const auto& c : cases) {
            const auto written = writer->write(pcap::Record::whole(time_us, with_link_header(link_type, c.packet)));
            REQUIRE(written);
            time_us += 1000;
        }
        REQUIRE(writer->close());
    }

    std::string command = "tshark -n -r " + test::shell_quote(capture_path) +
                          " -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE -o ip.check_checksum:TRUE"
                          " -o tcp.relative_sequence_numbers:FALSE"
                          " -T fields -E separator=/t -E occurrence=a -E aggregator=,";
    for (const auto& column : columns) command += " -e " + column;
    const auto result = test::run_command(command, 120);
    INFO("tshark stderr: " << result.err);
    INFO("tshark stdout:\n" << result.out);
    REQUIRE(result.exit_code == 0);

    const auto good = good_status_numbers(checksum_columns);

    const auto lines = split(result.out, '\n');
    REQUIRE(lines.size() >= cases.size());
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const Case& c = cases[i];
        CAPTURE(c.name);
        const auto cells = split(lines[i], '\t');
        REQUIRE(cells.size() == columns.size());
        std::map<std::string, std::string> got;
        for (std::size_t k = 0; k < columns.size(); ++k) got[columns[k]] = cells[k];
        for (const auto& [column, value] : c.expected) {
            CAPTURE(column);
            CHECK(got[column] == value);
        }
        for (const auto& column : c.checksums) {
            CAPTURE(column);
            const auto statuses = split(got[column], ',');
            REQUIRE_FALSE(statuses.empty());
            for (const auto& status : statuses) CHECK(status == good.at(column));
        }
    }
}
