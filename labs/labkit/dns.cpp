#include "labkit/dns.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace portlab::dns {
namespace {

constexpr std::size_t header_bytes = 12;       // RFC 1035 4.1.1
constexpr std::size_t max_label_bytes = 63;    // RFC 1035 2.3.4
constexpr std::size_t max_name_bytes = 255;    // as encoded, length bytes included
constexpr std::uint16_t pointer_to_question = 0xC000 | header_bytes;  // 4.1.4: the question's name

void put16(std::vector<std::uint8_t>& out, std::uint16_t value) {
    out.push_back(static_cast<std::uint8_t>(value >> 8));
    out.push_back(static_cast<std::uint8_t>(value & 0xFF));
}

void put32(std::vector<std::uint8_t>& out, std::uint32_t value) {
    put16(out, static_cast<std::uint16_t>(value >> 16));
    put16(out, static_cast<std::uint16_t>(value & 0xFFFF));
}

// Names compare without regard to ASCII case (RFC 1035 2.3.3, RFC 4343).
bool same_name(std::string_view a, std::string_view b) {
    return std::ranges::equal(a, b, [](char x, char y) {
        return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
    });
}

// A name as a sequence of labels, each preceded by its length, ended by the root's 0.
Result<void> put_name(std::vector<std::uint8_t>& out, std::string_view name) {
    std::size_t written = 1;  // the root label
    while (!name.empty()) {
        const auto dot = name.find('.');
        const auto label = name.substr(0, dot);
        if (label.empty()) return fail(fmt::format("an empty label in the name"));
        if (label.size() > max_label_bytes)
            return fail(fmt::format("a label of {} bytes (at most {})", label.size(), max_label_bytes));
        written += 1 + label.size();
        if (written > max_name_bytes) return fail(fmt::format("a name longer than {} bytes", max_name_bytes));
        out.push_back(static_cast<std::uint8_t>(label.size()));
        out.insert(out.end(), label.begin(), label.end());
        name = dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
    }
    out.push_back(0);
    return {};
}

std::uint16_t flags_of(const Message& message, bool truncated) {
    return static_cast<std::uint16_t>((message.response ? 0x8000 : 0) | ((message.opcode & 0xF) << 11) |
                                      (message.authoritative ? 0x0400 : 0) | (truncated ? 0x0200 : 0) |
                                      (message.recursion_desired ? 0x0100 : 0) |
                                      (message.recursion_available ? 0x0080 : 0) | (message.rcode & 0xF));
}

Result<std::vector<std::uint8_t>> record_bytes(const Record& record, const std::vector<Question>& questions) {
    std::vector<std::uint8_t> out;
    if (!questions.empty() && same_name(record.name, questions.front().name)) {
        put16(out, pointer_to_question);
    } else if (auto named = put_name(out, record.name); !named) {
        return named.error();
    }
    put16(out, record.type);
    put16(out, record.klass);
    put32(out, record.ttl);
    if (record.data.size() > 0xFFFF) return fail("record data longer than 65535 bytes");
    put16(out, static_cast<std::uint16_t>(record.data.size()));
    out.insert(out.end(), record.data.begin(), record.data.end());
    return out;
}

// Reads bytes in order, each read checked against the end.
class Reader {
public:
    explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

    [[nodiscard]] std::size_t at() const noexcept { return at_; }
    Result<std::uint16_t> u16() {
        if (at_ + 2 > bytes_.size()) return ended("two bytes");
        const auto value = static_cast<std::uint16_t>(bytes_[at_] << 8 | bytes_[at_ + 1]);
        at_ += 2;
        return value;
    }
    Result<std::uint32_t> u32() {
        auto high = u16();
        if (!high) return high.error();
        auto low = u16();
        if (!low) return low.error();
        return static_cast<std::uint32_t>(*high) << 16 | *low;
    }
    Result<std::vector<std::uint8_t>> take(std::size_t count) {
        if (at_ + count > bytes_.size()) return ended(fmt::format("{} bytes", count));
        std::vector<std::uint8_t> out(bytes_.begin() + static_cast<std::ptrdiff_t>(at_),
                                      bytes_.begin() + static_cast<std::ptrdiff_t>(at_ + count));
        at_ += count;
        return out;
    }
    // A name, following compression pointers (RFC 1035 4.1.4). A pointer must point
    // backwards, so a loop of pointers cannot hold the reader.
    Result<std::string> name() {
        std::string name;
        std::size_t at = at_;
        std::size_t encoded = 1;
        bool jumped = false;
        for (;;) {
            if (at >= bytes_.size()) return fail(fmt::format("byte {}: the message ends inside a name", at));
            const std::uint8_t length = bytes_[at];
            if ((length & 0xC0) == 0xC0) {
                if (at + 1 >= bytes_.size()) return fail(fmt::format("byte {}: the message ends inside a pointer", at));
                const std::size_t target = static_cast<std::size_t>(length & 0x3F) << 8 | bytes_[at + 1];
                if (target >= at) return fail(fmt::format("byte {}: a pointer to byte {}, not before it", at, target));
                if (!jumped) at_ = at + 2;
                jumped = true;
                at = target;
                continue;
            }
            if ((length & 0xC0) != 0) return fail(fmt::format("byte {}: label type 0x{:02x} is not defined", at, length));
            if (length == 0) break;
            encoded += 1 + length;
            if (encoded > max_name_bytes) return fail(fmt::format("byte {}: a name longer than {} bytes", at, max_name_bytes));
            if (at + 1 + length > bytes_.size()) return fail(fmt::format("byte {}: the message ends inside a label", at));
            if (!name.empty()) name += '.';
            name.append(reinterpret_cast<const char*>(&bytes_[at + 1]), length);
            at += 1 + length;
        }
        if (!jumped) at_ = at + 1;
        return name;
    }

private:
    Error ended(const std::string& wanted) const {
        return fail(fmt::format("byte {}: the message ends where {} should be", at_, wanted));
    }
    std::span<const std::uint8_t> bytes_;
    std::size_t at_ = 0;
};

Result<Record> read_record(Reader& in) {
    Record record;
    auto name = in.name();
    if (!name) return name.error();
    record.name = *name;
    auto type = in.u16();
    auto klass = type ? in.u16() : Result<std::uint16_t>(type.error());
    auto ttl = klass ? in.u32() : Result<std::uint32_t>(klass.error());
    auto length = ttl ? in.u16() : Result<std::uint16_t>(ttl.error());
    if (!length) return length.error();
    auto data = in.take(*length);
    if (!data) return data.error();
    record.type = *type;
    record.klass = *klass;
    record.ttl = *ttl;
    record.data = std::move(*data);
    return record;
}

}  // namespace

Result<IpAddress> Record::address() const {
    if (type != type_a || data.size() != 4) return fail(fmt::format("not an A record: type {}, {} bytes", type, data.size()));
    return IpAddress::from_bytes(data);
}

Record a_record(std::string name, const IpAddress& address, std::uint32_t ttl) {
    const auto bytes = address.bytes();
    return {std::move(name), type_a, class_in, ttl, {bytes.begin(), bytes.end()}};
}

Message query(std::uint16_t id, std::string name, std::uint16_t type) {
    Message message;
    message.id = id;
    message.questions.push_back({std::move(name), type, class_in});
    return message;
}

Result<std::vector<std::uint8_t>> encode(const Message& message, std::size_t max_bytes) {
    std::vector<std::uint8_t> sections;
    for (const auto& question : message.questions) {
        if (auto named = put_name(sections, question.name); !named) return named.error();
        put16(sections, question.type);
        put16(sections, question.klass);
    }
    if (header_bytes + sections.size() > max_bytes)
        return fail(fmt::format("the question alone takes {} bytes, more than {}", header_bytes + sections.size(), max_bytes));
    // Whole records only: a record cut in two would be no record (RFC 2181 9).
    std::size_t answers = 0;
    bool truncated = message.truncated;
    for (const auto& record : message.answers) {
        auto bytes = record_bytes(record, message.questions);
        if (!bytes) return bytes.error();
        if (header_bytes + sections.size() + bytes->size() > max_bytes) {
            truncated = true;
            break;
        }
        sections.insert(sections.end(), bytes->begin(), bytes->end());
        ++answers;
    }
    std::vector<std::uint8_t> out;
    put16(out, message.id);
    put16(out, flags_of(message, truncated));
    put16(out, static_cast<std::uint16_t>(message.questions.size()));
    put16(out, static_cast<std::uint16_t>(answers));
    put16(out, 0);  // NSCOUNT
    put16(out, 0);  // ARCOUNT
    out.insert(out.end(), sections.begin(), sections.end());
    return out;
}

Result<Message> decode(std::span<const std::uint8_t> bytes) {
    Reader in(bytes);
    std::uint16_t words[6];
    for (auto& word : words) {
        auto value = in.u16();
        if (!value) return value.error();
        word = *value;
    }
    Message message;
    message.id = words[0];
    const std::uint16_t flags = words[1];
    message.response = (flags & 0x8000) != 0;
    message.opcode = static_cast<std::uint8_t>((flags >> 11) & 0xF);
    message.authoritative = (flags & 0x0400) != 0;
    message.truncated = (flags & 0x0200) != 0;
    message.recursion_desired = (flags & 0x0100) != 0;
    message.recursion_available = (flags & 0x0080) != 0;
    message.rcode = static_cast<std::uint8_t>(flags & 0xF);
    for (std::uint16_t i = 0; i < words[2]; ++i) {
        auto name = in.name();
        auto type = name ? in.u16() : Result<std::uint16_t>(name.error());
        auto klass = type ? in.u16() : Result<std::uint16_t>(type.error());
        if (!klass) return klass.error();
        message.questions.push_back({*name, *type, *klass});
    }
    for (std::uint16_t i = 0; i < words[3]; ++i) {
        auto record = read_record(in);
        if (!record) return record.error();
        message.answers.push_back(std::move(*record));
    }
    // Authority and additional records: read, so their counts are checked, and not kept.
    for (int i = 0; i < words[4] + words[5]; ++i)
        if (auto record = read_record(in); !record) return record.error();
    if (in.at() != bytes.size()) return fail(fmt::format("byte {}: {} bytes after the last record", in.at(), bytes.size() - in.at()));
    return message;
}

std::string describe(const Question& question) {
    return fmt::format("{} {}", question.name, question.type == type_a ? std::string("A") : "type " + std::to_string(question.type));
}

std::string describe(const Record& record) {
    if (auto address = record.address()) return fmt::format("{} A {} (ttl {})", record.name, address->to_string(), record.ttl);
    return fmt::format("{} type {} ({} bytes)", record.name, record.type, record.data.size());
}

}  // namespace portlab::dns
