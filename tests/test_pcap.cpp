// Capture files: what portlab writes, tcpdump and tshark read the same way; what
// they (or the pcap format spec) say, portlab reads back; bad files are errors.
#include <catch2/catch.hpp>

#include <pcap/pcap.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "portlab/pcap.hpp"
#include "support.hpp"

using namespace portlab;
using test::lines_of;
using test::TempFile;
using test::tool_available;
namespace fs = std::filesystem;

namespace {

// A 30-byte IPv4/UDP packet written out from RFC 791 and RFC 768 by hand:
// 192.0.2.1:12345 -> 192.0.2.2:54321 carrying "hi".
const Bytes udp_packet{
    0x45, 0x00, 0x00, 0x1e,  // version 4, IHL 5; TOS 0; total length 30
    0x00, 0x00, 0x40, 0x00,  // identification 0; DF, fragment offset 0
    0x40, 0x11, 0xb6, 0xcb,  // TTL 64; protocol 17 (UDP); header checksum (one's complement sum, by hand)
    0xc0, 0x00, 0x02, 0x01,  // source 192.0.2.1
    0xc0, 0x00, 0x02, 0x02,  // destination 192.0.2.2
    0x30, 0x39, 0xd4, 0x31,  // source port 12345, destination port 54321
    0x00, 0x0a, 0x00, 0x00,  // UDP length 10; checksum 0 = "not computed" (RFC 768, IPv4 only)
    0x68, 0x69,              // "hi"
};

// The link headers a Linux loopback capture puts in front of that packet.
Bytes link_header(LinkType link_type) {
    switch (link_type) {
        case LinkType::raw: return {};
        // Ethernet II: zero destination and source MACs (lo has none), EtherType 0x0800.
        case LinkType::en10mb: return {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00};
        // Linux cooked v1: packet type 0 (to us), ARPHRD_LOOPBACK 772, address length 6,
        // 8 address bytes, protocol 0x0800.
        case LinkType::linux_sll: return {0x00, 0x00, 0x03, 0x04, 0x00, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00};
        // Linux cooked v2: protocol 0x0800, reserved, interface index 1 (lo),
        // ARPHRD_LOOPBACK 772, packet type 0, address length 6, 8 address bytes.
        case LinkType::linux_sll2:
            return {0x08, 0x00, 0, 0, 0, 0, 0, 1, 0x03, 0x04, 0x00, 0x06, 0, 0, 0, 0, 0, 0, 0, 0};
        // BSD loopback: AF_INET (2) as a 32-bit number in the writer's byte order.
        case LinkType::null: {
            const std::uint32_t af_inet = 2;
            Bytes header(4);
            std::memcpy(header.data(), &af_inet, 4);
            return header;
        }
    }
    return {};
}

Bytes framed(LinkType link_type) {
    Bytes frame = link_header(link_type);
    frame.insert(frame.end(), udp_packet.begin(), udp_packet.end());
    return frame;
}

void write_bytes(const std::string& path, const Bytes& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

Bytes read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Output of a peer tool (stdout and, where the command says 2>&1, stderr).
std::string run(const std::string& command) { return test::run_command(command).out; }

// 2023-11-14T22:13:20Z, a time stamp with a round number of seconds.
constexpr std::uint64_t base_us = 1'700'000'000'000'000;

// A capture file with no records: the 24-byte file header alone.
void write_header_only(const std::string& path, LinkType link_type) {
    auto writer = pcap::Writer::create(path, link_type);
    REQUIRE(writer);
    REQUIRE(writer->close());
}

void write_two_records(const std::string& path, LinkType link_type) {
    auto writer = pcap::Writer::create(path, link_type);
    REQUIRE(writer);
    REQUIRE(writer->write(pcap::Record::whole(base_us + 1, framed(link_type))));
    // Captured in full but 100 bytes on the wire: the original length survives.
    REQUIRE(writer->write(pcap::Record{base_us + 999'999, framed(link_type), 100}));
    REQUIRE(writer->close());
}

}  // namespace

TEST_CASE("a capture file round-trips records for every link type", "[pcap]") {
    const auto link_type = GENERATE(LinkType::raw, LinkType::en10mb, LinkType::linux_sll, LinkType::linux_sll2, LinkType::null);
    CAPTURE(static_cast<int>(link_type));
    TempFile file("roundtrip.pcap");
    write_two_records(file.path, link_type);

    const auto capture = pcap::read_file(file.path);
    REQUIRE(capture);
    CHECK(capture->link_type == link_type);
    REQUIRE(capture->records.size() == 2);
    CHECK(capture->records[0].timestamp_us == base_us + 1);
    CHECK(capture->records[0].bytes == framed(link_type));
    CHECK(capture->records[0].original_length == framed(link_type).size());
    CHECK(capture->records[1].timestamp_us == base_us + 999'999);
    CHECK(capture->records[1].bytes == framed(link_type));
    CHECK(capture->records[1].original_length == 100);
}

TEST_CASE("the file header stores LINKTYPE values, not DLT values", "[pcap]") {
    // pcap file format (draft-ietf-opsawg-pcap section 4): magic, version 2.4,
    // two reserved words, snaplen, then the link type in the last 4 bytes of 24.
    auto [link_type, file_value] = GENERATE(table<LinkType, std::uint32_t>({
        {LinkType::raw, 101}, {LinkType::en10mb, 1}, {LinkType::linux_sll, 113}, {LinkType::linux_sll2, 276}, {LinkType::null, 0},
    }));
    CAPTURE(file_value);
    TempFile file("linktype.pcap");
    write_header_only(file.path, link_type);
    const Bytes bytes = read_bytes(file.path);
    REQUIRE(bytes.size() == 24);
    std::uint32_t magic = 0;
    std::uint32_t stored = 0;
    std::memcpy(&magic, bytes.data(), 4);
    std::memcpy(&stored, bytes.data() + 20, 4);
    CHECK(magic == 0xa1b2c3d4);  // microsecond resolution, this host's byte order
    CHECK(stored == file_value);
}

TEST_CASE("tcpdump and tshark read what portlab writes the same way", "[pcap][tools]") {
    auto [link_type, tcpdump_name, frame_length] = GENERATE(table<LinkType, std::string, std::size_t>({
        {LinkType::raw, "RAW", 30},
        {LinkType::en10mb, "EN10MB", 44},
        {LinkType::linux_sll, "LINUX_SLL", 46},
        {LinkType::linux_sll2, "LINUX_SLL2", 50},
        {LinkType::null, "NULL", 34},
    }));
    CAPTURE(tcpdump_name);
    TempFile file("tools.pcap");
    write_two_records(file.path, link_type);

    SECTION("tcpdump: link type, packet count, microsecond times, the decoded packet") {
        if (!tool_available("tcpdump")) FAIL("tcpdump is not installed: run tools/setup");
        auto lines = lines_of(run("tcpdump -r '" + file.path + "' -nn -tt 2>&1"));
        // For LINUX_SLL2 tcpdump warns that it names interfaces by this machine's indexes.
        std::erase_if(lines, [](const std::string& line) { return line.starts_with("Warning: interface names"); });
        REQUIRE(lines.size() == 3);
        CHECK_THAT(lines[0], Catch::Contains("link-type " + tcpdump_name + " "));
        // v2 names the interface and the direction: index 1 (lo), packet type 0 ("In").
        const std::string interface = link_type == LinkType::linux_sll2 ? "lo    In  " : "";
        CHECK(lines[1] == "1700000000.000001 " + interface + "IP 192.0.2.1.12345 > 192.0.2.2.54321: UDP, length 2");
        CHECK(lines[2] == "1700000000.999999 " + interface + "IP 192.0.2.1.12345 > 192.0.2.2.54321: UDP, length 2");
    }
    SECTION("tshark: wire length and captured length of each frame") {
        if (!tool_available("tshark")) FAIL("tshark is not installed: run tools/setup");
        const auto lines = lines_of(run("tshark -r '" + file.path +
                                        "' -T fields -e frame.time_epoch -e frame.len -e frame.cap_len 2>/dev/null"));
        REQUIRE(lines.size() == 2);
        const auto length = std::to_string(frame_length);
        CHECK(lines[0] == "1700000000.000001000\t" + length + "\t" + length);
        CHECK(lines[1] == "1700000000.999999000\t100\t" + length);
    }
}

TEST_CASE("a snap length cuts packets as a capture would, keeping their wire length", "[pcap]") {
    TempFile file("snaplen.pcap");
    {
        auto writer = pcap::Writer::create(file.path, LinkType::raw, 20);
        REQUIRE(writer);
        REQUIRE(writer->write(pcap::Record::whole(base_us, udp_packet)));
        REQUIRE(writer->close());
    }
    const auto capture = pcap::read_file(file.path);
    REQUIRE(capture);
    REQUIRE(capture->records.size() == 1);
    CHECK(capture->records[0].bytes == Bytes(udp_packet.begin(), udp_packet.begin() + 20));
    CHECK(capture->records[0].original_length == 30);
    // capinfos comes with tshark (wireshark-common). -l: the snap length the file header states.
    if (!tool_available("capinfos")) FAIL("capinfos is not installed: run tools/setup");
    CHECK_THAT(run("capinfos -l '" + file.path + "' 2>&1"), Catch::Contains("20 bytes"));
}

TEST_CASE("records that cannot be written are refused, not mangled", "[pcap]") {
    TempFile file("refused.pcap");
    auto writer = pcap::Writer::create(file.path, LinkType::raw);
    REQUIRE(writer);
    SECTION("an original length shorter than the bytes captured") {
        const auto written = writer->write(pcap::Record{base_us, udp_packet, 10});
        REQUIRE_FALSE(written);
        CHECK_THAT(written.error().message, Catch::Contains("original length"));
    }
    SECTION("a time past what 32-bit seconds hold (2106-02-07)") {
        const std::uint64_t too_late = (std::uint64_t{1} << 32) * 1'000'000;
        const auto written = writer->write(pcap::Record::whole(too_late, udp_packet));
        REQUIRE_FALSE(written);
        CHECK_THAT(written.error().message, Catch::Contains("2106"));
    }
    SECTION("a snap length of zero") {
        const auto zero = pcap::Writer::create(file.path, LinkType::raw, 0);
        REQUIRE_FALSE(zero);
        CHECK_THAT(zero.error().message, Catch::Contains("snap length"));
    }
}

TEST_CASE("a big-endian nanosecond file built from the format spec reads back", "[pcap]") {
    // Another writer's choices portlab never makes itself: big-endian byte order and
    // the nanosecond magic 0xa1b23c4d (draft-ietf-opsawg-pcap section 4).
    Bytes file_bytes{
        0xa1, 0xb2, 0x3c, 0x4d,  // magic: nanoseconds, big-endian
        0x00, 0x02, 0x00, 0x04,  // version 2.4
        0, 0, 0, 0, 0, 0, 0, 0,  // reserved
        0x00, 0x00, 0xff, 0xff,  // snaplen 65535
        0x00, 0x00, 0x00, 0x65,  // link type 101 = LINKTYPE_RAW
        0x65, 0x53, 0xf1, 0x00,  // seconds 1700000000
        0x07, 0x5b, 0xcd, 0x15,  // nanoseconds 123456789
        0x00, 0x00, 0x00, 0x1e,  // captured length 30
        0x00, 0x00, 0x00, 0x1e,  // original length 30
    };
    file_bytes.insert(file_bytes.end(), udp_packet.begin(), udp_packet.end());
    TempFile file("bigendian.pcap");
    write_bytes(file.path, file_bytes);

    const auto capture = pcap::read_file(file.path);
    REQUIRE(capture);
    CHECK(capture->link_type == LinkType::raw);
    REQUIRE(capture->records.size() == 1);
    CHECK(capture->records[0].timestamp_us == base_us + 123'456);  // nanoseconds cut to microseconds
    CHECK(capture->records[0].bytes == udp_packet);
    if (tool_available("tcpdump")) {
        CHECK_THAT(run("tcpdump -r '" + file.path + "' -nn -tt 2>/dev/null"),
                   Catch::StartsWith("1700000000.123456 IP 192.0.2.1.12345 > 192.0.2.2.54321: UDP"));
    }
}

TEST_CASE("files portlab cannot read give one line naming the problem", "[pcap]") {
    SECTION("a missing file") {
        const auto missing = pcap::Reader::open("/nonexistent/portlab/none.pcap");
        REQUIRE_FALSE(missing);
        CHECK_THAT(missing.error().message, Catch::Contains("/nonexistent/portlab/none.pcap"));
        CHECK_THAT(missing.error().message, Catch::Contains("No such file or directory"));  // strerror(ENOENT)
    }
    SECTION("a link type outside the four") {
        TempFile file("wifi.pcap");
        {
            pcap_t* dead = pcap_open_dead(DLT_IEEE802_11, 65535);
            REQUIRE(dead != nullptr);
            pcap_dumper_t* dumper = pcap_dump_open(dead, file.path.c_str());
            REQUIRE(dumper != nullptr);
            pcap_dump_close(dumper);
            pcap_close(dead);
        }
        const auto wifi = pcap::Reader::open(file.path);
        REQUIRE_FALSE(wifi);
        CHECK_THAT(wifi.error().message, Catch::Contains("IEEE802_11 (105)"));
        CHECK_THAT(wifi.error().message, Catch::Contains("not supported"));
    }
    SECTION("a text file") {
        TempFile file("text.pcap");
        write_bytes(file.path, Bytes{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n'});
        const auto text = pcap::read_file(file.path);
        REQUIRE_FALSE(text);
        CHECK_THAT(text.error().message, Catch::Contains("unknown file format"));  // libpcap's words
    }
    SECTION("every message is one line") {
        const auto missing = pcap::read_file("/nonexistent/x.pcap");
        REQUIRE_FALSE(missing);
        CHECK(missing.error().message.find('\n') == std::string::npos);
    }
}

TEST_CASE("a capture cut at any byte is an error or ends at a record boundary", "[pcap][robustness]") {
    TempFile whole("whole.pcap");
    {
        auto writer = pcap::Writer::create(whole.path, LinkType::en10mb);
        REQUIRE(writer);
        for (std::uint64_t i = 0; i < 3; ++i) REQUIRE(writer->write(pcap::Record::whole(base_us + i, framed(LinkType::en10mb))));
        REQUIRE(writer->close());
    }
    const Bytes bytes = read_bytes(whole.path);
    // Format spec: a 24-byte file header, then per record a 16-byte header and its bytes.
    const std::size_t record_size = 16 + framed(LinkType::en10mb).size();
    REQUIRE(bytes.size() == 24 + 3 * record_size);

    TempFile cut("cut.pcap");
    for (std::size_t length = 0; length <= bytes.size(); ++length) {
        CAPTURE(length);
        write_bytes(cut.path, Bytes(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(length)));
        const auto capture = pcap::read_file(cut.path);
        const bool at_boundary = length >= 24 && (length - 24) % record_size == 0;
        if (at_boundary) {
            REQUIRE(capture);
            CHECK(capture->records.size() == (length - 24) / record_size);
        } else {
            REQUIRE_FALSE(capture);
            CHECK(capture.error().message.find('\n') == std::string::npos);
        }
        // Past the file header, a cut inside a record is told apart from a corrupt one:
        // the whole records before it read, then next() fails with cut_short().
        if (length >= 24 && !at_boundary) {
            auto reader = pcap::Reader::open(cut.path);
            REQUIRE(reader);
            std::size_t whole_records = 0;
            while (true) {
                auto record = reader->next();
                if (!record) break;
                REQUIRE(record->has_value());
                ++whole_records;
            }
            CHECK(whole_records == (length - 24) / record_size);
            CHECK(reader->cut_short());
        }
    }
}

TEST_CASE("a record whose header claims more bytes than any capture holds is corrupt, not cut short", "[pcap][robustness]") {
    TempFile file("corrupt.pcap");
    {
        auto writer = pcap::Writer::create(file.path, LinkType::en10mb);
        REQUIRE(writer);
        for (std::uint64_t i = 0; i < 2; ++i) REQUIRE(writer->write(pcap::Record::whole(base_us + i, framed(LinkType::en10mb))));
        REQUIRE(writer->close());
    }
    Bytes bytes = read_bytes(file.path);
    // The second record's caplen (record header bytes 8-11, the file's byte order,
    // which is this machine's): 0x7fffffff, far past the 262144-byte snap length.
    const std::size_t second = 24 + 16 + framed(LinkType::en10mb).size();
    const std::uint32_t huge = 0x7fffffff;
    std::memcpy(bytes.data() + second + 8, &huge, 4);
    write_bytes(file.path, bytes);
    auto reader = pcap::Reader::open(file.path);
    REQUIRE(reader);
    auto first = reader->next();
    REQUIRE(first);
    REQUIRE(first->has_value());
    CHECK_FALSE(reader->next());
    CHECK_FALSE(reader->cut_short());
}

TEST_CASE("random bytes never crash the reader", "[pcap][robustness]") {
    std::mt19937 random(20240601);  // fixed seed: the same bytes on every run
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<std::size_t> size(0, 300);
    TempFile file("random.pcap");
    TempFile header_source("header.pcap");
    write_header_only(header_source.path, LinkType::raw);
    const Bytes valid_header = read_bytes(header_source.path);

    for (int round = 0; round < 400; ++round) {
        CAPTURE(round);
        // Half the rounds start with a valid file header, so the garbage reaches
        // libpcap's record parser instead of stopping at the magic number.
        Bytes garbage = round % 2 == 0 ? valid_header : Bytes{};
        const std::size_t extra = size(random);
        for (std::size_t i = 0; i < extra; ++i) garbage.push_back(static_cast<std::uint8_t>(byte(random)));
        write_bytes(file.path, garbage);

        auto reader = pcap::Reader::open(file.path);
        if (!reader) continue;
        for (int records = 0; records < 1000; ++records) {  // bounded: a reader must end
            const auto next = reader->next();
            if (!next || !next->has_value()) break;
            CHECK(next->value().bytes.size() <= next->value().original_length);
        }
        // After an error or the end, the reader stays ended.
        const auto after = reader->next();
        CHECK((after && !after->has_value()));
    }
}
