#pragma once
// DNS messages as bytes (RFC 1035 4.1): the little a DNS server on port 53 and its client
// need to be real, so that tshark, Wireshark or any resolver reads them as DNS.
//
//   const auto query = dns::encode(dns::query(0x1234, "www.portlab.example"));
//   ... sendto(port 53) ... recvfrom() ...
//   const auto answer = dns::decode(reply_bytes);       // header, question, A records
//   answer->truncated;                                  // TC: ask again over TCP (RFC 7766)
//
// Only what lab 19 tells: one question per message, answers of type A (other types are kept
// as their type number and raw data), name compression read everywhere (4.1.4) and written
// for answers whose owner is the question's name. Over UDP a message is at most 512 bytes
// unless EDNS says otherwise (RFC 1035 4.2.1, RFC 6891): encode() with max_bytes = 512 keeps
// the answers that fit whole and sets TC, as RFC 2181 9 and RFC 7766 5 describe. Over TCP
// each message is preceded by its length as two bytes, network order (RFC 1035 4.2.2).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "portlab/net.hpp"
#include "portlab/result.hpp"

namespace portlab::dns {

inline constexpr Port port = 53;                      // "domain" in /etc/services, UDP and TCP
inline constexpr std::size_t udp_max_bytes = 512;     // RFC 1035 4.2.1, without EDNS
inline constexpr std::uint16_t type_a = 1;            // RFC 1035 3.2.2
inline constexpr std::uint16_t class_in = 1;          // RFC 1035 3.2.4
inline constexpr std::uint8_t rcode_no_error = 0;     // RFC 1035 4.1.1
inline constexpr std::uint8_t rcode_name_error = 3;   // NXDOMAIN: the name does not exist
inline constexpr std::uint8_t rcode_not_implemented = 4;

struct Question {
    std::string name;  // "www.portlab.example", no trailing dot
    std::uint16_t type = type_a;
    std::uint16_t klass = class_in;
    friend bool operator==(const Question&, const Question&) = default;
};

struct Record {
    std::string name;
    std::uint16_t type = type_a;
    std::uint16_t klass = class_in;
    std::uint32_t ttl = 0;
    std::vector<std::uint8_t> data;  // RDATA; for type A the 4 address bytes
    // The address of an A record (an error for any other record).
    [[nodiscard]] Result<IpAddress> address() const;
    friend bool operator==(const Record&, const Record&) = default;
};

// A record of type A, class IN.
[[nodiscard]] Record a_record(std::string name, const IpAddress& address, std::uint32_t ttl);

struct Message {
    std::uint16_t id = 0;
    bool response = false;             // QR
    std::uint8_t opcode = 0;           // 0: a standard query
    bool authoritative = false;        // AA
    bool truncated = false;            // TC: more did not fit; ask over TCP
    bool recursion_desired = false;    // RD
    bool recursion_available = false;  // RA
    std::uint8_t rcode = rcode_no_error;
    std::vector<Question> questions;
    std::vector<Record> answers;
    friend bool operator==(const Message&, const Message&) = default;
};

// A standard query for `name`, type A, with RD clear (our server is authoritative only).
[[nodiscard]] Message query(std::uint16_t id, std::string name, std::uint16_t type = type_a);

// The bytes of `message`. With max_bytes (512 for UDP), answers that would not fit whole are
// left out and TC is set in the bytes (the Message passed in is not changed). Names longer
// than 255 bytes or labels longer than 63 are an error (RFC 1035 2.3.4).
[[nodiscard]] Result<std::vector<std::uint8_t>> encode(const Message& message, std::size_t max_bytes = 65535);

// The message in `bytes`, every count in its header checked against what follows.
// Errors name what is wrong and where: "byte 12: a label of 70 bytes (at most 63)".
[[nodiscard]] Result<Message> decode(std::span<const std::uint8_t> bytes);

// "www.portlab.example A" / "A 192.0.2.2 (ttl 60)": a line for narration.
[[nodiscard]] std::string describe(const Question& question);
[[nodiscard]] std::string describe(const Record& record);

}  // namespace portlab::dns
