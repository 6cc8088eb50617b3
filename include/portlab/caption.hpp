#pragma once
// One sentence per trace event: the words portlab-sim prints beside each step
// and portlab-viz shows under the picture. One function, so the simulator and the
// visualizer tell the same story in the same words ("The client's OS assigned
// socket 7 ephemeral port 40002 from 32768-60999 (linux-hash-connect, even).").
// The sentence comes from the event alone, and names its facts: ports, states,
// errno, rule, timer length.

#include <cstdint>
#include <string>
#include <string_view>

#include "portlab/packet.hpp"
#include "portlab/services.hpp"
#include "portlab/trace.hpp"

namespace portlab {

// What a packet is, in the words of a caption or an animation: the TCP flags that
// matter most, or the transport. Read from the decoded header; nothing is inferred.
enum class PacketLabel : std::uint8_t { syn, syn_ack, ack, data, fin, rst, udp, icmp_unreachable, icmp, other };
[[nodiscard]] std::string_view to_string(PacketLabel label) noexcept;
[[nodiscard]] PacketLabel label_of(const DecodedPacket& packet) noexcept;

// The sentence for one event, starting with a capital (unless it starts with a
// host's name written in lower case, such as "localhost") and ending with a full
// stop. A note is its own text, left as written ("sshd listens ..."), with a full
// stop added when it has none. `services` names well-known ports ("(http)");
// nullptr leaves them out.
[[nodiscard]] std::string caption(const trace::Event& event, const ServiceTable* services);

// A time or a length of time in the unit that reads best, exact to the
// microsecond, without trailing zeros: "0 s", "40 µs", "15.25 ms", "60.031 s".
[[nodiscard]] std::string duration_text(std::uint64_t us);

}  // namespace portlab
