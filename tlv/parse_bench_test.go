package tlv

import (
	"bytes"
	"testing"
)

// cardAnswers are BER-TLV objects of the shapes a CIE session parses, with
// their real sizes: a secure-messaging answer (DO87 of 232 bytes, DO99,
// DO8E), the DH group of GET DATA (70 { BF A1 01 { A3 { 97 g, 98 p, 99 q }
// } } with g and p of 256 bytes), Y_ICC (A6 { 91 … }) and the IFD-CA key
// (70 { BF A0 04 { 7F 49 { 81 n, 82 e, 5F20, 5F4C } } }).
func cardAnswers() []struct {
	name  string
	raw   []byte
	depth int // constructed levels to walk
} {
	k := bytes.Repeat([]byte{0xA5}, 256)
	return []struct {
		name  string
		raw   []byte
		depth int
	}{
		{"sm-response", bytes.Join([][]byte{
			Encode(0x87, append([]byte{0x01}, make([]byte, 232)...)),
			Encode(0x99, []byte{0x90, 0x00}),
			Encode(0x8E, make([]byte, 8)),
		}, nil), 0},
		{"dh-group", Encode(0x70, Encode(0xBFA101, Encode(0xA3, Encode(0x97, k), Encode(0x98, k), Encode(0x99, k[:32])))), 3},
		{"dh-public", Encode(0xA6, Encode(0x91, k)), 1},
		{"ca-key", Encode(0x70, Encode(0xBFA004, Encode(0x7F49, Encode(0x81, k), Encode(0x82, []byte{1, 0, 1}),
			Encode(0x5F20, make([]byte, 12)), Encode(0x5F4C, make([]byte, 7))))), 3},
	}
}

// BenchmarkTLV measures the parsing of card answers down to their
// primitive objects, and the encoding of a command's data, with
// benchstat-friendly names (op=…/object=…).
func BenchmarkTLV(b *testing.B) {
	for _, a := range cardAnswers() {
		b.Run("op=parse/object="+a.name, func(b *testing.B) {
			b.SetBytes(int64(len(a.raw)))
			b.ReportAllocs()
			for b.Loop() {
				list, err := ParseAll(a.raw)
				if err != nil {
					b.Fatal(err)
				}
				for range a.depth {
					if list, err = list[0].Children(); err != nil {
						b.Fatal(err)
					}
				}
				if len(list) == 0 {
					b.Fatal("no objects")
				}
			}
		})
	}
	b.Run("op=find/object=sm-response", func(b *testing.B) {
		list, err := ParseAll(cardAnswers()[0].raw)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := Find(list, 0x8E); !ok {
				b.Fatal("no DO8E")
			}
		}
	})
	y := bytes.Repeat([]byte{0x5A}, 256)
	b.Run("op=encode/object=mse-set-dh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			// 80 01 9B 83 01 81 91 82 01 00 <Y_IFD>: the data of MSE SET KAT.
			d := append(append(Encode(0x80, []byte{0x9B}), Encode(0x83, []byte{0x81})...), Encode(0x91, y)...)
			if len(d) != 266 {
				b.Fatalf("%d bytes", len(d))
			}
		}
	})
}
