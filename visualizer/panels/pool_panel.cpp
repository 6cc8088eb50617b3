// Each host's ephemeral pool: a strip over its range with the ports in use, the
// last choice marked; the algorithm and parity the trace reported; the recent
// choices with the step between them (Linux's connect() walks even ports in
// small steps from a per-destination base: the steps show it).
#include <imgui.h>

#include <algorithm>
#include <string>
#include <vector>

#include "panels/panels.hpp"
#include "panels/style.hpp"

namespace portlab::viz::pool_panel {
namespace {

void draw_strip(const Model& model, replay::HostIndex h, const replay::EphemeralPool& pool) {
    const PortRange range = *pool.range;
    const ImVec2 origin = ImGui::GetCursorScreenPos();
    const float width = std::max(ImGui::GetContentRegionAvail().x - 8, 50.0f);
    const float height = 28;
    ImDrawList* draw = ImGui::GetWindowDrawList();
    draw->AddRectFilled(origin, ImVec2(origin.x + width, origin.y + height), IM_COL32(35, 38, 48, 255), 3);
    const Rect strip{origin.x, origin.y, width, height};
    // Ports in use, one mark per pixel column (10,000 ports cost as much as the
    // strip's width): TCP green, UDP blue, both drawn when a column has both.
    const int pixels = std::max(1, static_cast<int>(width));
    std::vector<unsigned char> used(static_cast<std::size_t>(pixels), 0);
    const auto mark = [&](Port port, unsigned char bit) {
        const float x = pool_x(strip, range, port) - origin.x;
        used[static_cast<std::size_t>(std::clamp(static_cast<int>(x), 0, pixels - 1))] |= bit;
    };
    for (const Port port : model.ports_in_use(h, Protocol::tcp)) {
        if (range.contains(port)) mark(port, 1);
    }
    for (const Port port : model.ports_in_use(h, Protocol::udp))
        if (range.contains(port)) mark(port, 2);
    for (int p = 0; p < pixels; ++p) {
        const float x = origin.x + static_cast<float>(p) + 0.5f;
        if (used[static_cast<std::size_t>(p)] & 1)
            draw->AddLine(ImVec2(x, origin.y + 3), ImVec2(x, origin.y + height - 3), IM_COL32(120, 200, 130, 255));
        if (used[static_cast<std::size_t>(p)] & 2)
            draw->AddLine(ImVec2(x, origin.y + 3), ImVec2(x, origin.y + height - 3), IM_COL32(110, 180, 230, 255));
    }
    if (pool.last) {
        const float x = pool_x(strip, range, *pool.last);
        draw->AddTriangleFilled(ImVec2(x, origin.y + height), ImVec2(x - 6, origin.y + height + 9), ImVec2(x + 6, origin.y + height + 9),
                                IM_COL32(255, 220, 80, 255));
    }
    draw->AddRect(origin, ImVec2(origin.x + width, origin.y + height), IM_COL32(120, 130, 150, 255), 3);
    ImGui::Dummy(ImVec2(width, height + 10));
    ImGui::TextDisabled("%u", range.low);
    const std::string high = std::to_string(range.high);
    ImGui::SameLine(std::max(0.0f, width - ImGui::CalcTextSize(high.c_str()).x));
    ImGui::TextDisabled("%s", high.c_str());
    const Model::PoolUse use = model.pool_use(h);
    ImGui::Text("%zu of %zu ports in use: %zu TCP, %zu UDP (%.2f%%)", use.in_use(), range.size(), use.tcp, use.udp,
                100.0 * static_cast<double>(use.in_use()) / static_cast<double>(std::max<std::size_t>(1, range.size())));
    if (use.full()) {
        ImGui::PushStyleColor(ImGuiCol_Text, IM_COL32(255, 90, 80, 255));
        ImGui::TextWrapped("FULL: every port of the range is taken; the next connect() to a destination already using "
                           "them all fails with EADDRNOTAVAIL.");
        ImGui::PopStyleColor();
    }
}

}  // namespace

void draw(const Model& model, ViewState&) {
    if (!model.loaded()) return;
    const auto& world = model.world();
    bool any = false;
    for (replay::HostIndex h = 0; h < world.hosts().size(); ++h) {
        const auto& host = world.hosts()[h];
        const auto& pool = host.pool;
        if (!pool.range) continue;
        any = true;
        ImGui::PushID(static_cast<int>(h));
        ImGui::Separator();
        style::text_coloured(IM_COL32(240, 240, 245, 255), "Ephemeral pool of " + host.name);
        ImGui::Text("range %s  (net.ipv4.ip_local_port_range)", pool.range->to_string().c_str());
        ImGui::Text("algorithm: %s", pool.algorithm.c_str());
        if (pool.last) {
            std::string parity = pool.parity ? (*pool.parity == trace::Parity::even ? "even" : "odd")
                                             : (*pool.last % 2 == 0 ? "even (not reported)" : "odd (not reported)");
            ImGui::Text("last choice: %u  (%s)   choices so far: %zu", *pool.last, parity.c_str(), pool.assignments);
        }
        draw_strip(model, h, pool);
        if (!pool.recent.empty()) {
            std::string recent;
            for (std::size_t i = 0; i < pool.recent.size(); ++i) {
                recent += std::to_string(pool.recent[i]);
                if (i > 0) {
                    const int step = static_cast<int>(pool.recent[i]) - static_cast<int>(pool.recent[i - 1]);
                    recent += " (" + std::string(step >= 0 ? "+" : "") + std::to_string(step) + ")";
                }
                recent += i + 1 < pool.recent.size() ? ",  " : "";
            }
            ImGui::TextDisabled("recent choices, with the step from the previous one:");
            const style::MonoScope mono;
            ImGui::TextWrapped("%s", recent.c_str());
        }
        ImGui::PopID();
    }
    if (!any) ImGui::TextWrapped("No host has been given an ephemeral port yet. A client's OS picks one when it connects "
                                 "without binding first.");
}

}  // namespace portlab::viz::pool_panel
