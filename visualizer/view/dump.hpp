#pragma once
// What the canvas and the panels draw at the model's position, as JSON: hosts with their
// addresses, firewall mark, rules and pool; slots with port, state and error; connections
// with their 4-tuples; packets in flight; TCP timers running. `portlab-viz FILE --at N
// --dump-state OUT.json` writes it without opening a window, so tests (and graders) can
// check the picture against the kernel or the simulator. In challenge mode it adds
// "challenge": {enabled, asked, correct, questions [{event, kind, prompt, choices, answer,
// chosen}], open, scores {source: {asked, correct}}}.

#include <nlohmann/json.hpp>

#include "view/model.hpp"
#include "view/view_state.hpp"

namespace portlab::viz {

[[nodiscard]] nlohmann::json dump_state(const Model& model, const ChallengeView* challenge = nullptr);

}  // namespace portlab::viz
