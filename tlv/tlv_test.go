package tlv

import (
	"bytes"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestParseOne(t *testing.T) {
	for _, tc := range []struct {
		name, in    string
		tag         Tag
		value, rest string
	}{
		{"one-byte tag", "9902 9000", 0x99, "9000", ""},
		{"empty value", "8000", 0x80, "", ""},
		{"two-byte tag 7F49", "7F49 03 810100 FFFF", 0x7F49, "810100", "FFFF"},
		{"two-byte tag 5F37", "5F37 02 AABB", 0x5F37, "AABB", ""},
		{"three-byte tag BFA101", "BFA101 02 A380 00", 0xBFA101, "A380", "00"},
		{"four-byte tag", "DF818201 01 07", 0xDF818201, "07", ""},
		{"non-minimal 81 05", "30 8105 0102030405 000000", 0x30, "0102030405", "000000"},
		{"non-minimal 82 00 05", "04 820005 0102030405", 0x04, "0102030405", ""},
		{"83 length", "04 83000003 010203", 0x04, "010203", ""},
		{"84 length", "04 8400000003 010203 ff", 0x04, "010203", "ff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := unhex(t, tc.in)
			got, rest, err := ParseOne(in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Tag != tc.tag || hex.EncodeToString(got.Value) != strings.ToLower(tc.value) || hex.EncodeToString(rest) != strings.ToLower(tc.rest) {
				t.Errorf("got %v %x rest %x, want %v %s rest %s", got.Tag, got.Value, rest, tc.tag, tc.value, tc.rest)
			}
			if !bytes.Equal(got.Raw, in[:len(in)-len(rest)]) {
				t.Errorf("Raw %x, want %x", got.Raw, in[:len(in)-len(rest)])
			}
		})
	}
}

func TestParseOneLongValues(t *testing.T) {
	for _, n := range []int{127, 128, 255, 256, 300, 65535, 65536} {
		v := bytes.Repeat([]byte{0xA5}, n)
		enc := Encode(0x91, v)
		got, rest, err := ParseOne(enc)
		if err != nil || got.Tag != 0x91 || !bytes.Equal(got.Value, v) || len(rest) != 0 {
			t.Errorf("n=%d: got %v len %d rest %d, %v", n, got.Tag, len(got.Value), len(rest), err)
		}
	}
}

func TestParseOneRejects(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"tag 00 (padding)", "0000"},
		{"tag FF (padding)", "FF00"},
		{"truncated tag", "7F"},
		{"truncated tag continuation", "BFA1"},
		{"tag of five bytes", "DF81828301 00"},
		{"no length", "87"},
		{"indefinite length", "30 80 0101 0000"},
		{"length form 85", "04 850000000001 00"},
		{"length past the buffer", "04 05 01020304"},
		{"long length past the buffer", "04 8105 01020304"},
		{"truncated long length", "04 82 01"},
		{"huge 84 length", "04 84FFFFFFFF 00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _, err := ParseOne(unhex(t, tc.in)); !errors.Is(err, ErrMalformed) {
				t.Errorf("got %v %x, %v; want ErrMalformed", got.Tag, got.Value, err)
			}
		})
	}
}

// TestCardEncodingsASN1Rejects: encoding/asn1 refuses the non-minimal
// lengths real cards send; this package must accept them.
func TestCardEncodingsASN1Rejects(t *testing.T) {
	for _, in := range []string{
		"30 8105 0203010001",   // SEQUENCE, 81 05 where 05 would do
		"30 820005 0203010001", // 82 00 05
		"7F49 8105 8103010001", // application tag 7F49 with 81 05
	} {
		b := unhex(t, in)
		var raw asn1.RawValue
		if _, err := asn1.Unmarshal(b, &raw); err == nil {
			t.Errorf("%s: encoding/asn1 accepts it; the test needs an encoding it rejects", in)
		}
		got, rest, err := ParseOne(b)
		if err != nil || len(got.Value) != 5 || len(rest) != 0 {
			t.Errorf("%s: got %v %x rest %x, %v", in, got.Tag, got.Value, rest, err)
		}
	}
}

func TestParseAll(t *testing.T) {
	list, err := ParseAll(unhex(t, "800101 830181 9102AABB"))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].Tag != 0x80 || list[1].Tag != 0x83 || list[2].Tag != 0x91 {
		t.Fatalf("got %v", list)
	}
	if l, err := ParseAll(nil); err != nil || len(l) != 0 {
		t.Errorf("ParseAll(nil) = %v, %v; want empty", l, err)
	}
	if _, err := ParseAll(unhex(t, "800101 83")); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing garbage: %v, want ErrMalformed", err)
	}
}

// TestPaddedFile: a DER file padded with zeros, as EF 1003 and EF 1004 are,
// is read by its outer object; the padding is left in rest.
func TestPaddedFile(t *testing.T) {
	obj := Encode(0x30, Encode(0x02, []byte{0x00, 0xC5}), Encode(0x02, []byte{0x01, 0x00, 0x01}))
	file := append(append([]byte(nil), obj...), make([]byte, 100)...)
	got, rest, err := ParseOne(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Raw, obj) || len(rest) != 100 {
		t.Errorf("Raw %x rest %d bytes, want %x and 100", got.Raw, len(rest), obj)
	}
	if _, err := ParseAll(file); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseAll of the padded file: %v, want ErrMalformed", err)
	}
}

// TestCAKeyTemplate walks the IFD-CA key answer of architecture.md:
// 70 { BF A0 04 { 7F 49 { 81 n, 82 e, 5F20 CHR, 5F4C CHA } } }.
func TestCAKeyTemplate(t *testing.T) {
	n := bytes.Repeat([]byte{0xC3}, 256)
	e := []byte{0x01, 0x00, 0x01}
	chr := unhex(t, "00000000 4954434131323334")
	cha := unhex(t, "A00000000039 01")
	answer := Encode(0x70, Encode(0xBFA004, Encode(0x7F49, Encode(0x81, n), Encode(0x82, e), Encode(0x5F20, chr), Encode(0x5F4C, cha))))
	if !bytes.HasPrefix(answer, unhex(t, "7082012D BFA004 820127 7F49 820122 81820100")) {
		t.Fatalf("encoding %x", answer[:20])
	}
	top, err := ParseAll(answer)
	if err != nil {
		t.Fatal(err)
	}
	path := []Tag{0x70, 0xBFA004, 0x7F49}
	list := top
	for _, tag := range path {
		d, ok := Find(list, tag)
		if !ok {
			t.Fatalf("%v not found", tag)
		}
		if !tag.Constructed() {
			t.Errorf("%v not constructed", tag)
		}
		if list, err = d.Children(); err != nil {
			t.Fatal(err)
		}
	}
	for tag, want := range map[Tag][]byte{0x81: n, 0x82: e, 0x5F20: chr, 0x5F4C: cha} {
		d, ok := Find(list, tag)
		if !ok || !bytes.Equal(d.Value, want) {
			t.Errorf("%v = %x, %v; want %x", tag, d.Value, ok, want)
		}
	}
	if _, ok := Find(list, 0x83); ok {
		t.Error("Find(83) found something")
	}
	if _, err := (TLV{Tag: 0x70, Value: []byte{0x81, 0x05}}).Children(); !errors.Is(err, ErrMalformed) {
		t.Errorf("Children of a broken value: %v", err)
	}
}

func TestTag(t *testing.T) {
	for _, tc := range []struct {
		tag         Tag
		bytes       string
		constructed bool
	}{
		{0x87, "87", false},
		{0x70, "70", true},
		{0xA6, "A6", true},
		{0x5F37, "5F37", false},
		{0x7F49, "7F49", true},
		{0xBFA101, "BFA101", true},
		{0xDF818201, "DF818201", false},
	} {
		if got := tc.tag.String(); got != tc.bytes {
			t.Errorf("%#x.String() = %s, want %s", uint32(tc.tag), got, tc.bytes)
		}
		if got := hex.EncodeToString(tc.tag.Bytes()); got != strings.ToLower(tc.bytes) {
			t.Errorf("%v.Bytes() = %s", tc.tag, got)
		}
		if tc.tag.Constructed() != tc.constructed {
			t.Errorf("%v.Constructed() = %v", tc.tag, !tc.constructed)
		}
	}
}

func TestAppendLength(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, "00"}, {1, "01"}, {127, "7f"}, {128, "8180"}, {255, "81ff"}, {256, "820100"},
		{65535, "82ffff"}, {65536, "83010000"}, {0xFFFFFF, "83ffffff"}, {0x1000000, "8401000000"},
		{0xFFFFFFFF, "84ffffffff"},
	} {
		if got := hex.EncodeToString(AppendLength([]byte{0xAA}, tc.n)); got != "aa"+tc.want {
			t.Errorf("AppendLength(%d) = %s, want aa%s", tc.n, got, tc.want)
		}
	}
	for _, n := range []int{-1, 0x100000000} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AppendLength(%d) did not panic", n)
				}
			}()
			AppendLength(nil, n)
		}()
	}
}

func TestEncode(t *testing.T) {
	for _, tc := range []struct {
		got  []byte
		want string
	}{
		{Encode(0x99, []byte{0x90, 0x00}), "99029000"},
		{Encode(0x8E), "8e00"},
		{Encode(0x87, []byte{0x01}, make([]byte, 0xE8)), "8781e901" + strings.Repeat("00", 0xE8)},
		{Encode(0x7F49, []byte{1}, nil, []byte{2}), "7f49020102"},
		{Encode(0xBFA101, nil), "bfa10100"},
	} {
		if got := hex.EncodeToString(tc.got); got != tc.want {
			t.Errorf("Encode = %s, want %s", got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"9902 9000", "7F49 8105 8103010001", "BFA101 02 A380", "30 820005 0201010101ff",
		"70 0B BFA004 07 7F49 04 81020102", "4D 08 70 06 BF A1 01 02 A3 80", "30 80 0000",
		"04 8400000003 010203",
	} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := ParseAll(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error without ErrMalformed: %v", err)
			}
			return
		}
		var raw, minimal []byte
		for _, d := range list {
			if !bytes.HasSuffix(d.Raw, d.Value) || !bytes.HasPrefix(d.Raw, d.Tag.Bytes()) {
				t.Fatalf("Raw %x does not hold tag %v and value %x", d.Raw, d.Tag, d.Value)
			}
			raw = append(raw, d.Raw...)
			minimal = append(minimal, Encode(d.Tag, d.Value)...)
			d.Children() // must not panic
		}
		if !bytes.Equal(raw, b) {
			t.Fatalf("Raw fields do not cover the input")
		}
		again, err := ParseAll(minimal)
		if err != nil || len(again) != len(list) {
			t.Fatalf("minimal re-encoding %x: %v", minimal, err)
		}
		for i := range again {
			if again[i].Tag != list[i].Tag || !bytes.Equal(again[i].Value, list[i].Value) {
				t.Fatalf("re-encoded #%d differs", i)
			}
		}
	})
}

// structure1K is a 1 KB template like the card's answers: a constructed
// object holding primitive ones with one- to three-byte tags and lengths in
// all short and long forms.
func structure1K() []byte {
	var inner [][]byte
	for i := 0; len(bytes.Join(inner, nil)) < 900; i++ {
		tags := []Tag{0x81, 0x5F20, 0x9F7F, 0xDF8101}
		inner = append(inner, Encode(tags[i%len(tags)], bytes.Repeat([]byte{byte(i)}, 10+i*3)))
	}
	return Encode(0x70, Encode(0x7F49, bytes.Join(inner, nil)), Encode(0x99, []byte{0x90, 0x00}))
}

func BenchmarkParseAll1K(b *testing.B) {
	s := structure1K()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		top, err := ParseAll(s)
		if err != nil {
			b.Fatal(err)
		}
		inner, err := top[0].Children()
		if err != nil {
			b.Fatal(err)
		}
		leaves, err := inner[0].Children()
		if err != nil || len(leaves) < 10 {
			b.Fatal(err)
		}
	}
}
