// libFuzzer harness: packet decode of every link type (issue 12, deliverable 4). The first
// byte picks the link type; the rest is the frame. Oracles: decoding never throws, and every
// field a decoded packet names lies inside the frame (the hex view and lab10 index with them).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "portlab/packet.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    constexpr std::array links{portlab::LinkType::null, portlab::LinkType::en10mb, portlab::LinkType::raw,
                               portlab::LinkType::linux_sll, portlab::LinkType::linux_sll2};
    const auto link = links[data[0] % links.size()];
    const std::span<const std::uint8_t> frame(data + 1, size - 1);
    const auto decoded = portlab::decode_frame(link, frame);
    if (!decoded) return 0;
    for (const auto& layer : decoded->layers)
        for (const auto& field : layer.fields)
            if (field.offset > frame.size() || field.length > frame.size() - field.offset) std::abort();
    (void)decoded->summary();
    return 0;
}
