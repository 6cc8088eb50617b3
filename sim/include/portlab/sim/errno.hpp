#pragma once
// What a simulated socket call returns: a value, or an errno-like error named the
// way Linux names it (EADDRINUSE, ...), with the text strerror(3) gives on glibc.

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>

namespace portlab::sim {

enum class Errno : std::uint8_t {
    eaddrinuse,     // bind/listen: the port is taken on an overlapping address
    eacces,         // bind: port below ip_unprivileged_port_start without CAP_NET_BIND_SERVICE
    eaddrnotavail,  // bind: address not on this host; connect/bind(0): ephemeral pool exhausted
    econnrefused,   // connect: RST to our SYN; connected UDP: ICMP port unreachable
    etimedout,      // connect or data: retransmissions gave up
    econnreset,     // an RST on an established connection
    einval,         // bind twice, listen/accept on the wrong kind of socket
    eisconn,        // connect on a connected (or listening) socket
    ealready,       // connect while a connect is in progress
    enotconn,       // send/recv before connecting
    edestaddrreq,   // send on an unconnected UDP socket
    eagain,         // nothing to accept or receive yet (the model's calls never block)
    epipe,          // send after shutdown of our side
    eopnotsupp,     // listen/accept on UDP
    ebadf,          // no such socket (never created, or closed)
    eafnosupport,   // address family does not match the socket's
    ehostunreach,   // connect/connected UDP: a hard ICMP error such as admin-prohibited (icmp_err_convert)
    enetunreach,    // connect/connected UDP: ICMP net prohibited (code 9)
    enoprotoopt,    // connect/connected UDP: ICMP protocol unreachable
};

// "EADDRINUSE"
[[nodiscard]] std::string_view errno_name(Errno error) noexcept;
// "Address already in use" (glibc's strerror text)
[[nodiscard]] std::string_view errno_message(Errno error) noexcept;
// Linux's number for it (<cerrno>), e.g. to classify a scan's answer (portlab/scan.hpp).
[[nodiscard]] int errno_value(Errno error) noexcept;
// The Errno with Linux's number `value`, if the model has it.
[[nodiscard]] std::optional<Errno> errno_from_value(int value) noexcept;

// A value or an Errno: the simulated kernel's answer to one call.
template <class T>
class [[nodiscard]] SysResult {
public:
    SysResult(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    SysResult(Errno error) : state_(std::in_place_index<1>, error) {}

    [[nodiscard]] bool has_value() const noexcept { return state_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }
    // Precondition: has_value().
    [[nodiscard]] const T& value() const& { return std::get<0>(state_); }
    [[nodiscard]] T& value() & { return std::get<0>(state_); }
    [[nodiscard]] const T& operator*() const& { return value(); }
    [[nodiscard]] const T* operator->() const { return &value(); }
    // Precondition: !has_value().
    [[nodiscard]] Errno error() const { return std::get<1>(state_); }

private:
    std::variant<T, Errno> state_;
};

struct Ok {
    friend bool operator==(const Ok&, const Ok&) = default;
};

}  // namespace portlab::sim
