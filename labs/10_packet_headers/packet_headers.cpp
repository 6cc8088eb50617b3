// Lab 10: what a packet carries, read from a real capture.
//
// Inside a private user + network namespace of its own (nothing else on its `lo`, and no
// root needed to capture there), the lab starts a libpcap capture on `lo`, runs one TCP
// connection (handshake, a message each way, teardown) and one UDP exchange, and then
// prints every packet's IPv4 and TCP/UDP headers field by field, with the byte offsets of
// each field and a hex dump, using portlab's decoder (the visualizer's hex view uses the
// same code). Look at the ports: both directions carry the same two, reversed.
//
//   lab10_packet_headers                      capture and explain
//   lab10_packet_headers --pcap demo.pcap     ... and save the capture for Wireshark
//   lab10_packet_headers --read any.pcap      decode a capture from tcpdump, Wireshark or portlab-sim
//   lab10_packet_headers --read any.pcap --json

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <set>

#include <asio.hpp>
#include <fmt/format.h>

#include "labkit/capture.hpp"
#include "labkit/labkit.hpp"
#include "labkit/netns.hpp"
#include "portlab/conversation.hpp"
#include "portlab/hex.hpp"
#include "portlab/packet.hpp"
#include "portlab/pcap.hpp"

using namespace portlab;
using nlohmann::json;

namespace {

// ---- inside the namespace: capture while a TCP connection and a UDP exchange run ----------

// Runs in the forked child (netns.hpp). Everything it learns goes back as JSON.
json capture_demo(const Endpoint& server) {
    const std::string port = std::to_string(server.port);
    auto capture = capture::LiveCapture::open({"lo", "tcp port " + port + " or udp port " + port});
    if (!capture) throw std::runtime_error(capture.error().message);

    asio::io_context io;
    const auto tcp_server = labkit::to_tcp_endpoint(server);
    const auto udp_server = labkit::to_udp_endpoint(server);
    json facts;

    // TCP: handshake, one message each way, the client closes first, then the server.
    asio::ip::tcp::acceptor acceptor(io, tcp_server);
    asio::ip::tcp::socket client(io);
    client.connect(tcp_server);
    asio::ip::tcp::socket accepted = acceptor.accept();
    facts["tcp_client"] = labkit::to_endpoint(client.local_endpoint()).to_string();
    std::array<char, 64> buffer{};
    asio::write(client, asio::buffer(std::string_view("hello server\n")));
    accepted.read_some(asio::buffer(buffer));
    asio::write(accepted, asio::buffer(std::string_view("hello client\n")));
    client.read_some(asio::buffer(buffer));
    client.close();  // FIN from the client
    asio::error_code end;
    while (!end) accepted.read_some(asio::buffer(buffer), end);  // reads the FIN as end of file
    accepted.close();  // FIN from the server; the client's kernel ACKs it and keeps TIME-WAIT
    acceptor.close();

    // UDP: one datagram each way; no handshake, no teardown.
    asio::ip::udp::socket udp_listener(io, udp_server);
    asio::ip::udp::socket udp_client(io, asio::ip::udp::endpoint(udp_server.address(), 0));
    udp_client.send_to(asio::buffer(std::string_view("ping\n")), udp_server);
    asio::ip::udp::endpoint sender;
    udp_listener.receive_from(asio::buffer(buffer), sender);
    udp_listener.send_to(asio::buffer(std::string_view("pong\n")), sender);
    udp_client.receive_from(asio::buffer(buffer), sender);
    facts["udp_client"] = labkit::to_endpoint(udp_client.local_endpoint()).to_string();

    // Everything has been sent; collect what the capture saw (bounded: 3 s, or 300 ms of quiet).
    const auto records = capture->read({std::chrono::milliseconds(3000), std::chrono::milliseconds(300), 1000, {}});
    if (!records) throw std::runtime_error(records.error().message);
    facts["link_type"] = static_cast<int>(capture->link_type());
    facts["records"] = json::array();
    for (const auto& record : *records)
        facts["records"].push_back({{"t_us", record.timestamp_us}, {"original_length", record.original_length},
                                    {"hex", to_hex(record.bytes)}});
    if (const auto stats = capture->stats()) facts["kernel_dropped"] = stats->dropped;
    return facts;
}

// ---- printing ----------------------------------------------------------------------------

std::string_view link_name(LinkType link) {
    switch (link) {
        case LinkType::null: return "NULL (BSD loopback)";
        case LinkType::en10mb: return "EN10MB (Ethernet)";
        case LinkType::raw: return "RAW (bare IP)";
        case LinkType::linux_sll: return "LINUX_SLL (Linux cooked)";
        case LinkType::linux_sll2: return "LINUX_SLL2 (Linux cooked v2, tcpdump -i any)";
    }
    return "?";
}

// "0010  45 00 00 3c 8a 4e 40 00  40 06 b2 6b 7f 00 00 01  E..<.N@.@..k...."
void print_hex_dump(labkit::Narrator& say, std::span<const std::uint8_t> bytes) {
    for (const auto& line : hex_dump(bytes)) say.note(line);
}

std::string field_position(const Field& field) {
    if (field.bit_count == 0)
        return field.length == 1 ? fmt::format("{}", field.offset) : fmt::format("{}-{}", field.offset, field.offset + field.length - 1);
    if (field.bit_count == 1) return fmt::format("{} b{}", field.offset, field.bit_offset);
    return fmt::format("{} b{}-{}", field.offset, field.bit_offset, field.bit_offset + field.bit_count - 1);
}

void print_layers(labkit::Narrator& say, const DecodedPacket& packet) {
    for (const auto& layer : packet.layers) {
        say.note(fmt::format("{} (bytes {}-{}, {} bytes)", layer.name, layer.offset, layer.offset + layer.length - 1, layer.length));
        for (const auto& field : layer.fields)
            say.note(fmt::format("  {:<9} {:<22} {:<28} {}", field_position(field), field.name, field.value, field.meaning));
    }
}

// The enumerator's name, for JSON readers.
std::string_view status_name(ChecksumStatus status) {
    switch (status) {
        case ChecksumStatus::good: return "good";
        case ChecksumStatus::bad: return "bad";
        case ChecksumStatus::partial_offload: return "partial_offload";
        case ChecksumStatus::not_computed: return "not_computed";
        case ChecksumStatus::not_verifiable: return "not_verifiable";
    }
    return "?";
}

json checksum_json(const std::optional<ChecksumCheck>& check) {
    if (!check) return nullptr;
    return {{"status", status_name(check->status)}, {"status_text", to_string(check->status)}, {"stored", check->stored}, {"expected", check->expected},
            {"explanation", check->explanation}};
}

json layers_json(const DecodedPacket& packet) {
    json layers = json::array();
    for (const auto& layer : packet.layers) {
        json fields = json::array();
        for (const auto& field : layer.fields)
            fields.push_back({{"name", field.name}, {"offset", field.offset}, {"length", field.length},
                              {"bit_offset", field.bit_offset}, {"bit_count", field.bit_count}, {"value", field.value},
                              {"meaning", field.meaning}});
        layers.push_back({{"name", layer.name}, {"offset", layer.offset}, {"length", layer.length}, {"fields", fields}});
    }
    return layers;
}

// The UDP length field as the wire has it (the decoder says where it is).
std::optional<std::uint16_t> udp_length(const DecodedPacket& packet, std::span<const std::uint8_t> bytes) {
    const auto* layer = packet.find_layer("UDP");
    if (!layer) return std::nullopt;
    for (const auto& field : layer->fields)
        if (field.name == "Length" && field.offset + 2 <= bytes.size())
            return static_cast<std::uint16_t>(bytes[field.offset] << 8 | bytes[field.offset + 1]);
    return std::nullopt;
}

json packet_json(std::size_t index, const pcap::Record& record, std::uint64_t first_us, const DecodedPacket& packet) {
    json ip = {{"version", packet.ip.source.is_v4() ? 4 : 6},
               {"source", packet.ip.source.to_string()},
               {"destination", packet.ip.destination.to_string()},
               {"total_length", packet.ip_total_length},
               {"ttl", packet.ip.ttl},
               {"identification", packet.ip.identification},
               {"protocol", packet.ip_protocol},
               {"checksum", checksum_json(packet.ip_checksum)}};
    json document = {{"index", index},
                     {"t_us", record.timestamp_us},
                     {"t_relative_us", record.timestamp_us - first_us},
                     {"captured_length", record.bytes.size()},
                     {"original_length", record.original_length},
                     {"summary", packet.summary()},
                     {"ip", ip},
                     {"tcp", nullptr},
                     {"udp", nullptr},
                     {"transport_checksum", checksum_json(packet.transport_checksum)},
                     {"payload_length", packet.payload_length},
                     {"notes", packet.notes},
                     {"layers", layers_json(packet)},
                     {"hex", to_hex(record.bytes)}};
    if (packet.tcp)
        document["tcp"] = {{"source_port", packet.tcp->source_port}, {"destination_port", packet.tcp->destination_port},
                           {"sequence", packet.tcp->sequence}, {"acknowledgment", packet.tcp->acknowledgment},
                           {"flags", packet.tcp->flags}, {"flags_text", tcp_flags_to_string(packet.tcp->flags)},
                           {"window", packet.tcp->window}, {"urgent_pointer", packet.tcp->urgent_pointer}};
    if (packet.udp) {
        const auto length = udp_length(packet, record.bytes);
        document["udp"] = {{"source_port", packet.udp->source_port}, {"destination_port", packet.udp->destination_port},
                           {"length", length ? json(*length) : json(nullptr)}};
    }
    return document;
}

// A conversation's directions as the lab shows them: (from, to) and its packets, first seen first.
std::vector<std::pair<std::pair<Endpoint, Endpoint>, std::size_t>> directions_of(const Conversation& conversation) {
    std::vector<std::pair<std::pair<Endpoint, Endpoint>, std::size_t>> directions{
        {{conversation.a, conversation.b}, conversation.packets_a_to_b}};
    if (conversation.packets_b_to_a > 0) directions.push_back({{conversation.b, conversation.a}, conversation.packets_b_to_a});
    return directions;
}

json conversations_json(const std::vector<Conversation>& conversations) {
    json list = json::array();
    for (const auto& conversation : conversations) {
        json directions = json::array();
        for (const auto& [ends, count] : directions_of(conversation))
            directions.push_back({{"source", ends.first.to_string()}, {"destination", ends.second.to_string()},
                                  {"source_port", ends.first.port}, {"destination_port", ends.second.port},
                                  {"packets", count}});
        list.push_back({{"protocol", to_string(conversation.protocol)}, {"directions", directions}});
    }
    return list;
}

void explain_conversations(labkit::Narrator& say, const std::vector<Conversation>& conversations) {
    for (const auto& conversation : conversations) {
        for (const auto& [ends, count] : directions_of(conversation))
            say.note(fmt::format("{:<4} {:>22} -> {:<22} source port {:>5}, destination port {:>5}  ({} packets)",
                                 to_string(conversation.protocol), ends.first.to_string(), ends.second.to_string(),
                                 ends.first.port, ends.second.port, count));
        if (conversation.packets_b_to_a > 0) {
            say.kernel(fmt::format("one {} conversation, two directions, the same two ports {} and {}: what one side "
                                   "sends from, the other sends to",
                                   to_string(conversation.protocol), conversation.a.port, conversation.b.port));
        }
    }
    say.note("No port 'sends' and no other 'receives': a connection is one port pair, and each direction writes it");
    say.note("in its own order, its own port as the source. (4-tuple: both addresses and both ports.)");
}

void explain_checksums(labkit::Narrator& say, const std::vector<DecodedPacket>& packets) {
    std::map<ChecksumStatus, std::size_t> transport;
    std::map<ChecksumStatus, std::size_t> ip;
    for (const auto& packet : packets) {
        if (packet.transport_checksum) ++transport[packet.transport_checksum->status];
        if (packet.ip_checksum) ++ip[packet.ip_checksum->status];
    }
    for (const auto& [status, count] : ip) say.kernel(fmt::format("IPv4 header checksum {}: {} packet(s)", to_string(status), count));
    for (const auto& [status, count] : transport)
        say.kernel(fmt::format("TCP/UDP checksum {}: {} packet(s)", to_string(status), count));
    if (transport.count(ChecksumStatus::partial_offload))
        say.note("On lo Linux stores only the pseudo-header sum (addresses, protocol, length) and marks the packet "
                 "CHECKSUM_PARTIAL: a network card would add the rest on the way out, and loopback needs none. The "
                 "capture copies the packet before that, so it is not damaged; Wireshark calls it 'unverified' or, "
                 "with checksum validation on, 'incorrect, maybe caused by TCP checksum offload'.");
}

// Decodes every record, printing them unless --json; the facts go into `facts`.
// `file` is the capture on disk (--read or --pcap), "" when there is none: each packet's step
// then names the tshark command that shows the same packet.
std::vector<DecodedPacket> decode_and_show(labkit::Lab& lab, LinkType link, const std::vector<pcap::Record>& records,
                                           json& facts, const std::string& file) {
    auto& say = lab.narrate();
    std::vector<DecodedPacket> decoded;
    facts["packets"] = json::array();
    facts["undecodable"] = json::array();
    const std::uint64_t first_us = records.empty() ? 0 : records.front().timestamp_us;
    for (std::size_t i = 0; i < records.size(); ++i) {
        const auto& record = records[i];
        auto packet = decode_frame(link, record.bytes, record.original_length);
        if (!packet) {
            say.step(fmt::format("packet {}: cannot decode: {}", i + 1, packet.error().message));
            print_hex_dump(say, record.bytes);
            facts["undecodable"].push_back({{"index", i + 1}, {"error", packet.error().message}, {"hex", to_hex(record.bytes)}});
            continue;
        }
        say.step(fmt::format("packet {} at +{:.6f} s: {}", i + 1, static_cast<double>(record.timestamp_us - first_us) / 1e6,
                             packet->summary()));
        print_layers(say, *packet);
        for (const auto& note : packet->notes) say.note("note: " + note);
        print_hex_dump(say, record.bytes);
        if (!file.empty()) say.see_it_yourself(fmt::format("tshark -r {} -V -x -Y 'frame.number == {}'", file, i + 1));
        facts["packets"].push_back(packet_json(i + 1, record, first_us, *packet));
        lab.trace().record("localhost", trace::Packet{trace::PacketKind::delivered, record.bytes, link, std::nullopt,
                                                      std::nullopt, std::nullopt});
        decoded.push_back(std::move(*packet));
    }
    return decoded;
}

}  // namespace

int main(int argc, char** argv) {
    return labkit::run_lab(argc, argv, {"lab10_packet_headers", "Lab 10: capture on loopback and read every header field"},
                           [](labkit::Lab& lab) {
        // --- Arguments --------------------------------------------------------------
        std::string save_file;
        std::string read_file;
        lab.add_server_options(8080);
        lab.cli().add_option("--pcap", save_file, "also save the live capture to FILE (open it in Wireshark)")->type_name("FILE");
        lab.cli().add_option("--read", read_file, "decode FILE (pcap or pcapng, e.g. from tcpdump, Wireshark or portlab-sim) "
                                                  "instead of capturing")->type_name("FILE");
        lab.cli().footer("Examples: lab10_packet_headers --pcap demo.pcap    lab10_packet_headers --read demo.pcap --json");
        lab.parse();
        if (!read_file.empty() && !save_file.empty()) return lab.usage_error("--read and --pcap do not go together");
        if (read_file.empty() && (!lab.server().bind.is_v4() || !lab.server().bind.is_loopback()))
            return lab.usage_error("--bind: the lab's namespace has only lo, so use an IPv4 loopback address (127.x.y.z)");

        auto& say = lab.narrate();
        json facts = {{"lab", lab.name()}};
        LinkType link = LinkType::en10mb;
        std::vector<pcap::Record> records;

        if (!read_file.empty()) {
            // --- Read mode: any capture file ------------------------------------------------
            auto capture = pcap::read_file(read_file);
            if (!capture) return lab.usage_error("cannot read " + read_file + ": " + capture.error().message);
            say.title("Lab 10: the headers in " + read_file);
            link = capture->link_type;
            records = std::move(capture->records);
            say.step(fmt::format("read {}", read_file));
            say.kernel(fmt::format("{} packet(s), link type {}", records.size(), link_name(link)));
            facts["mode"] = "read";
            facts["file"] = read_file;
        } else {
            // --- Live mode: a private namespace, a capture on lo, some traffic ----------------
            const Endpoint server = lab.server().port == 0 ? Endpoint{lab.server().bind, 8080} : lab.server().endpoint();
            say.title("Lab 10: packet headers from a live capture on lo");
            say.step("make a private network namespace, capture on its lo, then run one TCP connection and one UDP exchange");
            say.note(fmt::format("server: TCP and UDP on {} (two different sockets: the same number, two protocols)", server.to_string()));
            auto result = run_in_private_netns([server] { return capture_demo(server); }, {}, std::chrono::seconds(10));
            if (!result) {
                say.kernel(result.error().message);
                const auto reason = result.error().message.find("unavailable") != std::string::npos
                                        ? result.error().message + "; the live capture needs a private user + network "
                                          "namespace (so capturing needs no root and only this lab's packets are on lo). "
                                          "--read FILE still works."
                                        : result.error().message;
                if (lab.json()) lab.print_json({{"lab", lab.name()}, {"mode", "live"}, {"error", reason}});
                return lab.failure(reason);
            }
            const auto& child = *result;
            link = static_cast<LinkType>(child.at("link_type").get<int>());
            for (const auto& entry : child.at("records"))
                records.push_back({entry.at("t_us"), from_hex(entry.at("hex").get<std::string>()).value(), entry.at("original_length")});
            say.kernel(fmt::format("TCP client {} -> server {}; UDP client {} -> server {}", child.value("tcp_client", "?"),
                                   server.to_string(), child.value("udp_client", "?"), server.to_string()));
            say.kernel(fmt::format("libpcap captured {} packet(s) on lo, link type {}, {} dropped by the kernel",
                                   records.size(), link_name(link), child.value("kernel_dropped", 0)));
            if (save_file.empty()) {
                say.note("tcpdump on the host's lo cannot see these packets: the namespace has its own lo. Add --pcap FILE "
                         "to keep them for tcpdump -r FILE or Wireshark.");
                say.see_it_yourself("lab10_packet_headers --pcap lab10.pcap   then   tcpdump -r lab10.pcap -nn -vv -XX");
            }
            facts["mode"] = "live";
            facts["server"] = server.to_string();
            facts["tcp_client"] = child.value("tcp_client", "");
            facts["udp_client"] = child.value("udp_client", "");

            if (!save_file.empty()) {
                auto writer = pcap::Writer::create(save_file, link);
                if (!writer) return lab.failure("cannot write " + save_file + ": " + writer.error().message);
                for (const auto& record : records)
                    if (const auto written = writer->write(record); !written)
                        return lab.failure("cannot write " + save_file + ": " + written.error().message);
                if (const auto flushed = writer->flush(); !flushed)
                    return lab.failure("cannot write " + save_file + ": " + flushed.error().message);
                say.kernel("saved the capture to " + save_file);
                say.see_it_yourself("tshark -r " + save_file + " -V    or    tcpdump -r " + save_file + " -nn -vv -X");
                facts["pcap"] = save_file;
            }
        }
        facts["link_type"] = link_name(link);
        facts["link_type_value"] = static_cast<int>(link);

        // --- Every packet, field by field ---------------------------------------------------
        const std::string file = read_file.empty() ? save_file : read_file;
        const auto decoded = decode_and_show(lab, link, records, facts, file);

        // --- The port pair, and the checksums --------------------------------------------------
        const auto conversations = find_conversations(link, records);
        say.step("the ports of each conversation, in each direction");
        explain_conversations(say, conversations);
        say.see_it_yourself(file.empty() ? std::string("run with --pcap lab10.pcap, then: tshark -r lab10.pcap -q -z conv,tcp -z conv,udp")
                                         : "tshark -r " + file + " -q -z conv,tcp -z conv,udp");
        facts["conversations"] = conversations_json(conversations);
        say.step("the checksums");
        explain_checksums(say, decoded);
        say.see_it_yourself("tshark -r " + (file.empty() ? std::string("lab10.pcap") : file) +
                            " -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE -o ip.check_checksum:TRUE -V | grep -i checksum");

        if (lab.json()) lab.print_json(facts);
        return labkit::exit_ok;
    });
}
