// Package tlv owns the BER-TLV codec used by the CIE protocol (ISO/IEC 7816-4
// §5.2 / ISO/IEC 8825-1 tag and length forms): it parses the data objects the
// card returns (multi-byte tags such as 7F49, 5F37 or BFA101, long lengths
// 81 … 84, including the non-minimal ones real cards send that encoding/asn1
// rejects) and encodes the data objects the host sends, with minimal lengths.
//
// It knows nothing about what the tags mean; packages sm, cie and
// internal/ciesim give them meaning. Parsed values alias the input buffer.
package tlv

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every parsing error of this package.
var ErrMalformed = errors.New("malformed BER-TLV")

// maxTagBytes is the longest tag a Tag can hold.
const maxTagBytes = 4

// Tag is a BER tag with its bytes read big-endian: 0x87, 0x7F49, 0x5F37,
// 0xBFA101.
type Tag uint32

// firstByte returns the first (class and form) byte of the encoded tag.
func (t Tag) firstByte() byte {
	switch {
	case t > 0xFFFFFF:
		return byte(t >> 24)
	case t > 0xFFFF:
		return byte(t >> 16)
	case t > 0xFF:
		return byte(t >> 8)
	}
	return byte(t)
}

// Constructed reports whether the tag has the constructed bit (0x20 of its
// first byte) set, i.e. whether its value is itself a sequence of TLVs.
func (t Tag) Constructed() bool { return t.firstByte()&0x20 != 0 }

// Bytes returns the encoded tag (1 to 4 bytes; the tag 0 encodes as 00).
func (t Tag) Bytes() []byte { return t.append(nil) }

func (t Tag) append(dst []byte) []byte {
	switch {
	case t > 0xFFFFFF:
		return append(dst, byte(t>>24), byte(t>>16), byte(t>>8), byte(t))
	case t > 0xFFFF:
		return append(dst, byte(t>>16), byte(t>>8), byte(t))
	case t > 0xFF:
		return append(dst, byte(t>>8), byte(t))
	}
	return append(dst, byte(t))
}

// String prints the tag in hexadecimal as it is written in the specs: "7F49".
func (t Tag) String() string { return fmt.Sprintf("%X", t.Bytes()) }

// TLV is one parsed data object. Value and Raw alias the parsed buffer.
type TLV struct {
	Tag   Tag
	Value []byte // the value field
	Raw   []byte // tag, length and value as encoded
}

// Children parses the value as a sequence of data objects (for constructed
// tags such as 70, 7F49 or A6).
func (t TLV) Children() ([]TLV, error) {
	list, err := ParseAll(t.Value)
	if err != nil {
		return nil, fmt.Errorf("parsing children of %v: %w", t.Tag, err)
	}
	return list, nil
}

// ParseOne parses the data object at the start of b and returns it with the
// bytes that follow it, so that a file padded after its outer data object can
// be trimmed. Indefinite lengths (80), lengths of more than four bytes, the
// invalid first tag bytes 00 and FF, and lengths past the end of b are
// rejected with ErrMalformed.
func ParseOne(b []byte) (TLV, []byte, error) {
	tag, n, err := parseTag(b)
	if err != nil {
		return TLV{}, nil, err
	}
	l, m, err := parseLength(b[n:])
	if err != nil {
		return TLV{}, nil, fmt.Errorf("parsing length of %v: %w", tag, err)
	}
	start := n + m
	if l > uint64(len(b)-start) {
		return TLV{}, nil, fmt.Errorf("parsing %v: length %d exceeds the %d bytes left: %w", tag, l, len(b)-start, ErrMalformed)
	}
	end := start + int(l)
	return TLV{Tag: tag, Value: b[start:end:end], Raw: b[:end:end]}, b[end:], nil
}

// ParseAll parses all of b as a sequence of data objects; an empty b gives an
// empty list.
func ParseAll(b []byte) ([]TLV, error) {
	var list []TLV
	for len(b) > 0 {
		t, rest, err := ParseOne(b)
		if err != nil {
			return nil, err
		}
		list = append(list, t)
		b = rest
	}
	return list, nil
}

// Find returns the first data object of list with the given tag. It does not
// descend into constructed values.
func Find(list []TLV, tag Tag) (TLV, bool) {
	for _, t := range list {
		if t.Tag == tag {
			return t, true
		}
	}
	return TLV{}, false
}

func parseTag(b []byte) (Tag, int, error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("parsing tag: no bytes: %w", ErrMalformed)
	}
	if b[0] == 0x00 || b[0] == 0xFF {
		return 0, 0, fmt.Errorf("parsing tag: invalid first byte %02X: %w", b[0], ErrMalformed)
	}
	tag := Tag(b[0])
	if b[0]&0x1F != 0x1F {
		return tag, 1, nil
	}
	for i := 1; ; i++ {
		if i >= len(b) {
			return 0, 0, fmt.Errorf("parsing tag: truncated after %X: %w", b[:i], ErrMalformed)
		}
		if i >= maxTagBytes {
			return 0, 0, fmt.Errorf("parsing tag: longer than %d bytes: %w", maxTagBytes, ErrMalformed)
		}
		tag = tag<<8 | Tag(b[i])
		if b[i]&0x80 == 0 {
			return tag, i + 1, nil
		}
	}
}

func parseLength(b []byte) (uint64, int, error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("no length byte: %w", ErrMalformed)
	}
	switch first := b[0]; {
	case first < 0x80:
		return uint64(first), 1, nil
	case first == 0x80:
		return 0, 0, fmt.Errorf("indefinite length: %w", ErrMalformed)
	case first > 0x84:
		return 0, 0, fmt.Errorf("length form %02X: %w", first, ErrMalformed)
	default:
		n := int(first & 0x7F)
		if len(b) < 1+n {
			return 0, 0, fmt.Errorf("truncated length %X: %w", b, ErrMalformed)
		}
		var l uint64
		for _, c := range b[1 : 1+n] {
			l = l<<8 | uint64(c)
		}
		return l, 1 + n, nil
	}
}

// AppendLength appends the minimal (DER) encoding of the length n to dst:
// one byte below 128, then 81 xx, 82 xx xx, 83 … and 84 …. It panics if n is
// negative or above 2^32-1.
func AppendLength(dst []byte, n int) []byte {
	switch {
	case n < 0 || uint64(n) > 0xFFFFFFFF:
		panic(fmt.Sprintf("tlv: length %d out of range", n))
	case n < 0x80:
		return append(dst, byte(n))
	case n <= 0xFF:
		return append(dst, 0x81, byte(n))
	case n <= 0xFFFF:
		return append(dst, 0x82, byte(n>>8), byte(n))
	case n <= 0xFFFFFF:
		return append(dst, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// Encode returns the data object with the given tag whose value is the
// concatenation of value, with a minimal length.
func Encode(tag Tag, value ...[]byte) []byte {
	n := 0
	for _, v := range value {
		n += len(v)
	}
	out := make([]byte, 0, maxTagBytes+5+n)
	out = tag.append(out)
	out = AppendLength(out, n)
	for _, v := range value {
		out = append(out, v...)
	}
	return out
}
