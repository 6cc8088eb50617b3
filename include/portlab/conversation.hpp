#pragma once
// A capture's conversations, as Wireshark's Statistics > Conversations and
// `tshark -z conv,tcp -z conv,udp` count them: the packets between two endpoints of
// one protocol, both directions together, each direction counted on its own.
// Lab 10 prints them; the visualizer lists them and draws a line for each.

#include <cstddef>
#include <map>
#include <span>
#include <tuple>
#include <vector>

#include "portlab/net.hpp"
#include "portlab/packet.hpp"
#include "portlab/pcap.hpp"

namespace portlab {

struct Conversation {
    Protocol protocol = Protocol::tcp;
    Endpoint a;  // the side that sent the conversation's first packet
    Endpoint b;
    std::size_t first_index = 0;  // where its first and last packet stand in what was counted
    std::size_t last_index = 0;   // (a capture's record, a trace's event)
    std::size_t packets_a_to_b = 0;
    std::size_t packets_b_to_a = 0;
    std::size_t bytes_a_to_b = 0;  // frame lengths on the wire, link header included
    std::size_t bytes_b_to_a = 0;

    [[nodiscard]] std::size_t packets() const noexcept { return packets_a_to_b + packets_b_to_a; }
    [[nodiscard]] std::size_t bytes() const noexcept { return bytes_a_to_b + bytes_b_to_a; }
};

// Counts packets into conversations, kept in the order of their first packets.
class ConversationTable {
public:
    // One packet at `index`, `frame_bytes` long on the wire. A packet that carries
    // neither TCP nor UDP belongs to no conversation: false, nothing counted.
    bool add(std::size_t index, const DecodedPacket& packet, std::size_t frame_bytes);

    [[nodiscard]] const std::vector<Conversation>& conversations() const& noexcept { return list_; }
    [[nodiscard]] std::vector<Conversation> conversations() && noexcept { return std::move(list_); }

private:
    // (protocol, lower endpoint, higher endpoint) -> place in list_: either direction finds it.
    std::map<std::tuple<Protocol, Endpoint, Endpoint>, std::size_t> index_;
    std::vector<Conversation> list_;
};

// Every TCP/UDP conversation in a capture's records (index: the record's, from 0);
// records that do not decode are skipped.
[[nodiscard]] std::vector<Conversation> find_conversations(LinkType link_type, std::span<const pcap::Record> records);

}  // namespace portlab
