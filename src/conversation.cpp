#include "portlab/conversation.hpp"

#include <algorithm>

namespace portlab {

bool ConversationTable::add(std::size_t index, const DecodedPacket& packet, std::size_t frame_bytes) {
    const auto protocol = packet.protocol();
    const auto from = packet.source();
    const auto to = packet.destination();
    if (!protocol || !from || !to) return false;
    const auto [low, high] = std::minmax(*from, *to);
    auto found = index_.find({*protocol, low, high});
    if (found == index_.end()) {
        found = index_.emplace(std::tuple{*protocol, low, high}, list_.size()).first;
        list_.push_back(Conversation{*protocol, *from, *to, index, index, 0, 0, 0, 0});
    }
    auto& conversation = list_[found->second];
    conversation.last_index = index;
    if (*from == conversation.a) {
        ++conversation.packets_a_to_b;
        conversation.bytes_a_to_b += frame_bytes;
    } else {
        ++conversation.packets_b_to_a;
        conversation.bytes_b_to_a += frame_bytes;
    }
    return true;
}

std::vector<Conversation> find_conversations(LinkType link_type, std::span<const pcap::Record> records) {
    ConversationTable table;
    for (std::size_t i = 0; i < records.size(); ++i) {
        const auto& record = records[i];
        const auto packet = decode_frame(link_type, record.bytes, record.original_length);
        if (packet) table.add(i, *packet, std::max<std::size_t>(record.original_length, record.bytes.size()));
    }
    return std::move(table).conversations();
}

}  // namespace portlab
