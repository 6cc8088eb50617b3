#pragma once
// One panel per file, each a function of (model, view state): it reads the model,
// keeps its UI-only state in ViewState, and asks for changes through
// view.requests. The app places the windows; a panel draws a window's contents.

#include "view/model.hpp"
#include "view/view_state.hpp"

namespace portlab::viz {

namespace topology_panel { void draw(const Model& model, ViewState& view); }
namespace timeline_panel { void draw(const Model& model, ViewState& view); }
namespace events_panel { void draw(const Model& model, ViewState& view); }
namespace inspector_panel { void draw(const Model& model, ViewState& view); }
namespace sockets_panel { void draw(const Model& model, ViewState& view); }
namespace connections_panel { void draw(const Model& model, ViewState& view); }
namespace pool_panel { void draw(const Model& model, ViewState& view); }
namespace tcp_state_panel { void draw(const Model& model, ViewState& view); }
namespace firewall_panel { void draw(const Model& model, ViewState& view); }
namespace ladder_panel { void draw(const Model& model, ViewState& view); }
namespace challenge_panel { void draw(const Model& model, ViewState& view); }
namespace nat_panel { void draw(const Model& model, ViewState& view); }
namespace packets_panel {
void draw(const Model& model, ViewState& view);
// The port / flag / connection filter and the relative-seq toggle, shared with the ladder;
// "follow" keeps the connection of `current` (the packet at the cursor), when there is one.
void draw_filter(PacketViews& packets, const PacketRow* current);
}  // namespace packets_panel

}  // namespace portlab::viz
