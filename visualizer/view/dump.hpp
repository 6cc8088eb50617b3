#pragma once
// What the canvas and the panels draw at the model's position, as JSON: hosts with their
// addresses, firewall mark, rules and pool; slots with port, state (the colour class, the
// RFC's name and ss's) and error; connections
// with their 4-tuples; packets in flight; TCP timers running. `portlab-viz FILE --at N
// --dump-state OUT.json` writes it without opening a window, so tests (and graders) can
// check the picture against the kernel or the simulator. In challenge mode it adds
// "challenge": {enabled, asked, correct, questions [{event, kind, prompt, choices, answer,
// chosen}], open, scores {source: {asked, correct}}}. A router's hosts[].nat lists its
// translations (original, after and reply tuples, conntrack -L's line); when the current
// event is a translation, "nat_translation" {router, kind, before, after} is what the
// topology shows at the router.

#include <nlohmann/json.hpp>

#include "view/model.hpp"
#include "view/view_state.hpp"

namespace portlab::viz {

[[nodiscard]] nlohmann::json dump_state(const Model& model, const ChallengeView* challenge = nullptr);
// The same as the window shows it: timers counted down at the cursor's virtual time
// ("cursor_us"; between events in time-proportional play), "playback" {proportional,
// time_scale, playing}, and "selection" {socket, event, field {layer, field, name, offset,
// length}} (what was clicked), besides the challenge when it is on. After frames were drawn
// (--script), "drawn" {hex {event, cells [{byte, x, y}]}, tree [{event, layer, field, name,
// rect}], items {name: rect}}: where the last frame put what a click can pick.
[[nodiscard]] nlohmann::json dump_state(const Model& model, const ViewState& view);

}  // namespace portlab::viz
