package pcsc

import (
	"bytes"
	"testing"
)

func TestParseFeatures(t *testing.T) {
	// libccid's answer for a pinpad reader: VERIFY_PIN_DIRECT, MODIFY_PIN_DIRECT, GET_TLV_PROPERTIES.
	b := []byte{0x06, 4, 0x42, 0x33, 0x00, 0x06, 0x07, 4, 0x42, 0x33, 0x00, 0x07, 0x12, 4, 0x42, 0x33, 0x00, 0x12}
	got := parseFeatures(b)
	if len(got) != 3 || got[featureGetTLVProperties] != 0x42330012 || got[0x06] != 0x42330006 {
		t.Fatalf("parseFeatures = %x", got)
	}
	// A malformed entry ends the list; what came before is kept.
	if got := parseFeatures(append(b[:6:6], 0x12, 3, 1, 2, 3)); len(got) != 1 || got[0x06] != 0x42330006 {
		t.Fatalf("parseFeatures(malformed) = %x", got)
	}
	if got := parseFeatures(nil); len(got) != 0 {
		t.Fatalf("parseFeatures(nil) = %x", got)
	}
}

func TestParseProperties(t *testing.T) {
	// wLcdLayout 0, bMaxPINSize 8, dwMaxAPDUDataSize 65536, wIdVendor 0x072F.
	b := []byte{0x01, 2, 0, 0, 0x07, 1, 8, PropMaxAPDUDataSize, 4, 0x00, 0x00, 0x01, 0x00, 0x0B, 2, 0x2F, 0x07}
	got, err := parseProperties(b)
	if err != nil {
		t.Fatal(err)
	}
	for tag, want := range map[byte]uint32{0x01: 0, 0x07: 8, PropMaxAPDUDataSize: 65536, 0x0B: 0x072F} {
		if v, ok := PropertyUint(got[tag]); !ok || v != want {
			t.Errorf("property %#x = %x (%v), want %d", tag, got[tag], ok, want)
		}
	}
	for _, bad := range [][]byte{{0x0A}, {0x0A, 4, 0, 0}, {0x01, 2, 0, 0, 0x0A}} {
		if _, err := parseProperties(bad); err == nil {
			t.Errorf("parseProperties(% X) accepted a truncated list", bad)
		}
	}
	if _, ok := PropertyUint([]byte{1, 2, 3}); ok {
		t.Error("PropertyUint accepted 3 bytes")
	}
	if v, _ := PropertyUint(bytes.Repeat([]byte{0xFF}, 4)); v != 0xFFFFFFFF {
		t.Errorf("PropertyUint(FF×4) = %x", v)
	}
}
