// Lab 10: what a packet carries, read from a real capture.
//
// Inside a private user + network namespace of its own (nothing else on its `lo`, and no
// root needed to capture there), the lab starts a libpcap capture on `lo`, runs one TCP
// connection (handshake, a message each way, teardown) and one UDP exchange, and then
// prints every packet's IPv4 and TCP/UDP headers field by field, with the byte offsets of
// each field and a hex dump, using portlab's decoder (the visualizer's hex view uses the
// same code). Look at the ports: both directions carry the same two, reversed.
//
// With --trace FILE, portlab-viz replays the story: live, the client's and the server's
// sockets (both 127.0.0.1 in the namespace; the child reports each call it made, stamped
// on the capture's clock, so they are recorded in step with the packets) and every packet
// between them; from a file, one host per IP address the capture shows, and its packets.
//
//   lab10_packet_headers                      capture and explain
//   lab10_packet_headers --pcap demo.pcap     ... and save the capture for Wireshark
//   lab10_packet_headers --read any.pcap      decode a capture from tcpdump, Wireshark or portlab-sim
//   lab10_packet_headers --read any.pcap --json

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
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

// The clock libpcap stamps packets with: microseconds since the epoch. Each call below is
// stamped with it too, so the parent can tell the sockets' story in step with the packets.
std::uint64_t wall_clock_us() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

// Runs in the forked child (netns.hpp). Everything it learns goes back as JSON: the
// capture, and "calls", what each socket call returned and when.
json capture_demo(const Endpoint& server) {
    const std::string port = std::to_string(server.port);
    auto capture = capture::LiveCapture::open({"lo", "tcp port " + port + " or udp port " + port});
    if (!capture) throw std::runtime_error(capture.error().message);

    asio::io_context io;
    const auto tcp_server = labkit::to_tcp_endpoint(server);
    const auto udp_server = labkit::to_udp_endpoint(server);
    json facts;
    json& calls = facts["calls"] = json::array();
    const auto returned = [&calls](std::string call, json more = json::object()) {
        more["call"] = std::move(call);
        more["t_us"] = wall_clock_us();
        calls.push_back(std::move(more));
    };
    if (const auto range = read_ephemeral_range()) facts["range"] = {range->low, range->high};

    // TCP: handshake, one message each way, the client closes first, then the server.
    asio::ip::tcp::acceptor acceptor(io, tcp_server);  // socket(), bind(), listen()
    returned("tcp_listen");
    asio::ip::tcp::socket client(io);
    returned("tcp_connect");  // stamped before the call when the call sends: here the SYN
    client.connect(tcp_server);
    facts["tcp_client"] = labkit::to_endpoint(client.local_endpoint()).to_string();
    returned("tcp_connected");
    asio::ip::tcp::socket accepted = acceptor.accept();
    returned("tcp_accepted");
    std::array<char, 64> buffer{};
    asio::write(client, asio::buffer(std::string_view("hello server\n")));
    accepted.read_some(asio::buffer(buffer));
    asio::write(accepted, asio::buffer(std::string_view("hello client\n")));
    client.read_some(asio::buffer(buffer));
    returned("tcp_client_close");
    client.close();  // FIN from the client
    asio::error_code end;
    while (!end) accepted.read_some(asio::buffer(buffer), end);  // reads the FIN as end of file
    returned("tcp_server_read_eof");
    returned("tcp_server_close");
    accepted.close();  // FIN from the server; the client's kernel ACKs it and keeps TIME-WAIT
    acceptor.close();
    returned("tcp_listener_closed");

    // UDP: one datagram each way; no handshake, no teardown.
    asio::ip::udp::socket udp_listener(io, udp_server);
    returned("udp_server_bound");
    asio::ip::udp::socket udp_client(io, asio::ip::udp::endpoint(udp_server.address(), 0));
    facts["udp_client"] = labkit::to_endpoint(udp_client.local_endpoint()).to_string();
    returned("udp_client_bound", {{"local", facts["udp_client"]}});
    udp_client.send_to(asio::buffer(std::string_view("ping\n")), udp_server);
    asio::ip::udp::endpoint sender;
    udp_listener.receive_from(asio::buffer(buffer), sender);
    udp_listener.send_to(asio::buffer(std::string_view("pong\n")), sender);
    udp_client.receive_from(asio::buffer(buffer), sender);
    udp_client.close();
    udp_listener.close();
    returned("udp_closed");

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

// ---- the story's hosts and sockets ------------------------------------------------------

// The capture, wherever it came from.
struct Capture {
    LinkType link = LinkType::en10mb;
    std::vector<pcap::Record> records;
    std::string file;                   // on disk (--read or --pcap), "" when there is none
    std::optional<Endpoint> server;     // live: the server both sockets listened on
    json child = json::object();        // live: the namespace child's report (its calls)
};

// Who sends and who receives each packet: the trace's hosts. A live capture has two, the
// client and the server, both 127.0.0.1 inside the lab's namespace (told apart by the
// server's endpoint); a capture read from a file has one host per IP address it shows.
struct Cast {
    std::optional<Endpoint> server;
    [[nodiscard]] std::string host_of(const Endpoint& endpoint) const {
        if (server) return endpoint == *server ? "server" : "client";
        return endpoint.address.to_string();
    }
};

// Declares every host the packets go between, before any event on them.
Cast declare_hosts(labkit::Observer& see, const Capture& capture, const std::vector<std::optional<DecodedPacket>>& packets) {
    if (capture.server) {
        const std::vector<IpAddress> address{capture.server->address};
        see.declare({"client", address, "client, in the lab's private network namespace", false});
        see.declare({"server", address, "server, in the lab's private network namespace", false});
        return {capture.server};
    }
    std::vector<IpAddress> seen;
    for (const auto& packet : packets) {
        if (!packet) continue;
        for (const auto& address : {packet->ip.source, packet->ip.destination})
            if (std::find(seen.begin(), seen.end(), address) == seen.end()) seen.push_back(address);
    }
    for (const auto& address : seen) see.declare({address.to_string(), {address}, "seen in " + capture.file, false});
    return {};
}

// The sockets of the namespace's child, recorded from its report in step with the
// packets. The child held them, not this process, so their states are inferred from the
// calls that returned; the packets themselves show the rest.
class NamespaceStory {
public:
    NamespaceStory(labkit::Observer& see, const Endpoint& server, const json& child) : see_(see), server_(server) {
        if (child.contains("range")) range_ = PortRange{child["range"][0].get<Port>(), child["range"][1].get<Port>()};
        client_end_ = Endpoint::parse(child.value("tcp_client", "")).value_or(Endpoint{});
    }

    // One call the child made, as the facts it established.
    void record(const json& call) {
        using labkit::quietly;
        namespace fact = labkit::fact;
        const std::string what = call.at("call");
        if (what == "tcp_listen") {
            listener_ = open("server", Protocol::tcp);
            see_.record(fact::Bound{listener_, server_, trace::BindHow::explicit_port}, quietly);
            see_.record(fact::Listening{listener_, asio::socket_base::max_listen_connections}, quietly);
            inferred(listener_, TcpState::listen, "listen() returned");
        } else if (what == "tcp_connect") {
            // connect() takes the port (inet_hash_connect) before the SYN leaves with it.
            client_ = open("client", Protocol::tcp);
            see_.record(fact::Connecting{client_, server_}, quietly);
            see_.record(fact::Bound{client_, client_end_, trace::BindHow::ephemeral, range_}, quietly);
        } else if (what == "tcp_connected") {
            inferred(client_, TcpState::established, "connect() returned");
        } else if (what == "tcp_accepted") {
            accepted_ = see_.record(fact::Accepted{listener_, {server_, client_end_}}, quietly);
        } else if (what == "tcp_client_close") {
            see_.record(fact::Closed{client_}, quietly);
        } else if (what == "tcp_server_read_eof") {
            inferred(accepted_, TcpState::close_wait, "read() returned end of file: the client's FIN arrived");
        } else if (what == "tcp_server_close") {
            see_.record(fact::Closed{accepted_}, quietly);
        } else if (what == "tcp_listener_closed") {
            see_.record(fact::Closed{listener_}, quietly);
        } else if (what == "udp_server_bound") {
            udp_server_ = open("server", Protocol::udp);
            see_.record(fact::Bound{udp_server_, server_, trace::BindHow::explicit_port}, quietly);
        } else if (what == "udp_client_bound") {
            udp_client_ = open("client", Protocol::udp);
            see_.record(fact::Bound{udp_client_, local_of(call), trace::BindHow::bind_zero, range_}, quietly);
        } else if (what == "udp_closed") {
            see_.record(fact::Closed{udp_client_}, quietly);
            see_.record(fact::Closed{udp_server_}, quietly);
        }
    }

    // The namespace went away with the child: whatever TCP still kept (TIME-WAIT) is gone.
    void end() {
        for (const auto& socket : {client_, accepted_})
            if (socket.id.value != 0) inferred(socket, TcpState::closed, "the namespace went away with the child process");
    }

private:
    labkit::SocketRef open(const std::string& host, Protocol protocol) {
        return see_.open({host, {server_.address}, host, false}, protocol, IpFamily::v4);
    }
    void inferred(const labkit::SocketRef& socket, TcpState to, std::string cause) {
        see_.record(labkit::fact::State{socket, to, labkit::Evidence::inferred, std::move(cause)}, labkit::quietly);
    }
    static Endpoint local_of(const json& call) { return Endpoint::parse(call.at("local").get<std::string>()).value(); }

    labkit::Observer& see_;
    Endpoint server_;
    std::optional<PortRange> range_;
    Endpoint client_end_{};
    labkit::SocketRef listener_{}, client_{}, accepted_{}, udp_server_{}, udp_client_{};
};

// ---- the steps ---------------------------------------------------------------------------

// --read FILE: any capture file. Returns the exit status when it cannot be read.
std::optional<int> read_capture(labkit::Lab& lab, const std::string& file, Capture& capture) {
    auto& say = lab.narrate();
    auto read = pcap::read_file(file);
    if (!read) return lab.usage_error("cannot read " + file + ": " + read.error().message);
    say.title("Lab 10: the headers in " + file);
    capture.link = read->link_type;
    capture.records = std::move(read->records);
    capture.file = file;
    lab.observer().step(fmt::format("read {}", file));
    say.kernel(fmt::format("{} packet(s), link type {}", capture.records.size(), link_name(capture.link)));
    auto& facts = lab.observer().document();
    facts["mode"] = "read";
    facts["file"] = file;
    return std::nullopt;
}

// Live: a private namespace, a capture on its lo, one TCP connection and one UDP exchange.
std::optional<int> capture_live(labkit::Lab& lab, const Endpoint& server, Capture& capture) {
    auto& say = lab.narrate();
    auto& facts = lab.observer().document();
    say.title("Lab 10: packet headers from a live capture on lo");
    lab.observer().step("make a private network namespace, capture on its lo, then run one TCP connection and one UDP exchange");
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
    capture.child = std::move(*result);
    const auto& child = capture.child;
    capture.server = server;
    capture.link = static_cast<LinkType>(child.at("link_type").get<int>());
    for (const auto& entry : child.at("records"))
        capture.records.push_back({entry.at("t_us"), from_hex(entry.at("hex").get<std::string>()).value(), entry.at("original_length")});
    say.kernel(fmt::format("TCP client {} -> server {}; UDP client {} -> server {}", child.value("tcp_client", "?"),
                           server.to_string(), child.value("udp_client", "?"), server.to_string()));
    say.kernel(fmt::format("libpcap captured {} packet(s) on lo, link type {}, {} dropped by the kernel",
                           capture.records.size(), link_name(capture.link), child.value("kernel_dropped", 0)));
    facts["mode"] = "live";
    facts["server"] = server.to_string();
    facts["tcp_client"] = child.value("tcp_client", "");
    facts["udp_client"] = child.value("udp_client", "");
    return std::nullopt;
}

// --pcap FILE: keep the live capture for tcpdump and Wireshark.
std::optional<int> save_capture(labkit::Lab& lab, const std::string& file, Capture& capture) {
    auto& say = lab.narrate();
    if (file.empty()) {
        say.note("tcpdump on the host's lo cannot see these packets: the namespace has its own lo. Add --pcap FILE "
                 "to keep them for tcpdump -r FILE or Wireshark.");
        say.see_it_yourself("lab10_packet_headers --pcap lab10.pcap   then   tcpdump -r lab10.pcap -nn -vv -XX");
        return std::nullopt;
    }
    auto writer = pcap::Writer::create(file, capture.link, 262144, lab.output_rules());
    if (!writer) return lab.failure("cannot write " + file + ": " + writer.error().message);
    for (const auto& record : capture.records)
        if (const auto written = writer->write(record); !written)
            return lab.failure("cannot write " + file + ": " + written.error().message);
    if (const auto closed = writer->close(); !closed) return lab.failure("cannot write " + file + ": " + closed.error().message);
    say.kernel("saved the capture to " + file);
    say.see_it_yourself("tshark -r " + file + " -V    or    tcpdump -r " + file + " -nn -vv -X");
    lab.observer().document()["pcap"] = file;
    capture.file = file;
    return std::nullopt;
}

// One packet: its step, its fields, its hex, its --json entry and its trace event, all
// from the one decoded value.
void show_packet(labkit::Lab& lab, const Cast& cast, const Capture& capture, std::size_t i, const DecodedPacket& packet) {
    auto& say = lab.narrate();
    auto& see = lab.observer();
    const auto& record = capture.records[i];
    const std::uint64_t first_us = capture.records.front().timestamp_us;
    see.step(fmt::format("packet {} at +{:.6f} s: {}", i + 1, static_cast<double>(record.timestamp_us - first_us) / 1e6,
                         packet.summary()));
    print_layers(say, packet);
    for (const auto& note : packet.notes) say.note("note: " + note);
    print_hex_dump(say, record.bytes);
    if (!capture.file.empty())
        say.see_it_yourself(fmt::format("tshark -r {} -V -x -Y 'frame.number == {}'", capture.file, i + 1));
    auto& packets = see.document()["packets"];
    packets.push_back(packet_json(i + 1, record, first_us, packet));
    // Captured on lo: sent and delivered at once. The event belongs to the receiver.
    const auto from = cast.host_of(packet.source().value_or(Endpoint{packet.ip.source, 0}));
    const auto to = cast.host_of(packet.destination().value_or(Endpoint{packet.ip.destination, 0}));
    see.record(labkit::fact::PacketSeen{to, {trace::PacketKind::delivered, record.bytes, capture.link, std::nullopt, from, to}},
               {std::string(), fmt::format("/packets/{}", packets.size() - 1)});
}

void show_undecodable(labkit::Lab& lab, const pcap::Record& record, std::size_t i, const std::string& error) {
    lab.observer().step(fmt::format("packet {}: cannot decode: {}", i + 1, error));
    print_hex_dump(lab.narrate(), record.bytes);
    lab.observer().document()["undecodable"].push_back({{"index", i + 1}, {"error", error}, {"hex", to_hex(record.bytes)}});
}

// Every packet, field by field; in a live run, the namespace's sockets are recorded in
// step with them (each call before the first packet captured after it).
std::vector<DecodedPacket> show_packets(labkit::Lab& lab, const Capture& capture) {
    auto& facts = lab.observer().document();
    facts["packets"] = json::array();
    facts["undecodable"] = json::array();
    std::vector<std::optional<DecodedPacket>> packets;
    std::vector<std::string> errors(capture.records.size());
    for (std::size_t i = 0; i < capture.records.size(); ++i) {
        auto packet = decode_frame(capture.link, capture.records[i].bytes, capture.records[i].original_length);
        if (!packet) errors[i] = packet.error().message;
        packets.push_back(packet ? std::optional(std::move(*packet)) : std::nullopt);
    }
    const Cast cast = declare_hosts(lab.observer(), capture, packets);
    std::optional<NamespaceStory> story;
    if (capture.server) story.emplace(lab.observer(), *capture.server, capture.child);
    const json no_calls = json::array();
    const json& calls = capture.child.contains("calls") ? capture.child["calls"] : no_calls;
    std::size_t next_call = 0;
    const auto calls_until = [&](std::uint64_t t_us) {
        for (; story && next_call < calls.size() && calls[next_call].at("t_us").get<std::uint64_t>() <= t_us; ++next_call)
            story->record(calls[next_call]);
    };
    std::vector<DecodedPacket> decoded;
    for (std::size_t i = 0; i < capture.records.size(); ++i) {
        calls_until(capture.records[i].timestamp_us);
        if (!packets[i]) {
            show_undecodable(lab, capture.records[i], i, errors[i]);
            continue;
        }
        show_packet(lab, cast, capture, i, *packets[i]);
        decoded.push_back(std::move(*packets[i]));
    }
    calls_until(std::numeric_limits<std::uint64_t>::max());
    if (story) story->end();
    return decoded;
}

// The port pair of each conversation, and the checksums.
void explain(labkit::Lab& lab, const Capture& capture, const std::vector<DecodedPacket>& decoded) {
    auto& say = lab.narrate();
    const auto& file = capture.file;
    const auto conversations = find_conversations(capture.link, capture.records);
    lab.observer().step("the ports of each conversation, in each direction");
    explain_conversations(say, conversations);
    say.see_it_yourself(file.empty() ? std::string("run with --pcap lab10.pcap, then: tshark -r lab10.pcap -q -z conv,tcp -z conv,udp")
                                     : "tshark -r " + file + " -q -z conv,tcp -z conv,udp");
    lab.observer().document()["conversations"] = conversations_json(conversations);
    lab.observer().step("the checksums");
    explain_checksums(say, decoded);
    say.see_it_yourself("tshark -r " + (file.empty() ? std::string("lab10.pcap") : file) +
                        " -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE -o ip.check_checksum:TRUE -V | grep -i checksum");
}

}  // namespace

int main(int argc, char** argv) {
    return labkit::run_lab(argc, argv, {"lab10_packet_headers", "Lab 10: capture on loopback and read every header field"},
                           [](labkit::Lab& lab) {
        std::string save_file;
        std::string read_file;
        lab.add_server_options(8080, {});  // its own namespace: nothing here holds the port
        lab.cli().add_option("--pcap", save_file, "also save the live capture to FILE (open it in Wireshark)")->type_name("FILE");
        lab.add_input_option("--read", read_file, "decode FILE (pcap or pcapng, e.g. from tcpdump, Wireshark or portlab-sim) "
                                                  "instead of capturing");
        lab.cli().footer("Examples: lab10_packet_headers --pcap demo.pcap    lab10_packet_headers --read demo.pcap --json");
        lab.parse();
        if (!read_file.empty() && !save_file.empty()) return lab.usage_error("--read and --pcap do not go together");
        // Before any capture: an output that would clobber an input or a link is a usage error.
        if (!save_file.empty())
            if (const auto allowed = check_output_path(save_file, lab.output_rules()); !allowed)
                return lab.usage_error("--pcap: " + allowed.error().message);
        if (read_file.empty() && (!lab.server().bind.is_v4() || !lab.server().bind.is_loopback()))
            return lab.usage_error("--bind: the lab's namespace has only lo, so use an IPv4 loopback address (127.x.y.z)");

        auto& facts = lab.observer().document();
        facts["lab"] = lab.name();
        Capture capture;
        const Endpoint server = lab.server().port == 0 ? Endpoint{lab.server().bind, 8080} : lab.server().endpoint();
        const auto stop = read_file.empty() ? capture_live(lab, server, capture) : read_capture(lab, read_file, capture);
        if (stop) return *stop;
        if (read_file.empty())
            if (const auto failed = save_capture(lab, save_file, capture)) return *failed;
        facts["link_type"] = link_name(capture.link);
        facts["link_type_value"] = static_cast<int>(capture.link);

        const auto decoded = show_packets(lab, capture);
        explain(lab, capture, decoded);
        if (lab.json()) lab.print_json(facts);
        return labkit::exit_ok;
    });
}
