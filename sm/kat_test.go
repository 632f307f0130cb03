package sm

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// Known-answer vectors of cie-protocol.md §14.2.

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// vectorKeys derives the keys of §14.2 from Z = 00 01 … FF.
func vectorKeys() (kEnc, kMAC []byte) {
	z := make([]byte, 256)
	for i := range z {
		z[i] = byte(i)
	}
	return DeriveKeys(z)
}

func TestDeriveKeysVector(t *testing.T) {
	kEnc, kMAC := vectorKeys()
	if got, want := hex.EncodeToString(kEnc), "20d0ca4184b64cf791da828cc135e354"; got != want {
		t.Errorf("K_ENC = %s, want %s", got, want)
	}
	if got, want := hex.EncodeToString(kMAC), "9b0bb985660adf0b819d798b8a6d9071"; got != want {
		t.Errorf("K_MAC = %s, want %s", got, want)
	}
}

func TestRetailMACVector(t *testing.T) {
	_, kMAC := vectorKeys()
	in := unhex(t, "303132333435363738396162636465663031328000000000")
	if !bytes.Equal(in, Pad([]byte("0123456789abcdef012"))) {
		t.Fatalf("Pad(\"0123456789abcdef012\") = %x, want %x", Pad([]byte("0123456789abcdef012")), in)
	}
	if got, want := hex.EncodeToString(RetailMAC(kMAC, in)), "fb50b4ae142470a3"; got != want {
		t.Errorf("RetailMAC = %s, want %s", got, want)
	}
}

func TestVerifyIntermediateValues(t *testing.T) {
	kEnc, kMAC := vectorKeys()
	c, err := EncryptCBC(kEnc, unhex(t, "3132333435363738 8000000000000000"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(c), "c0c020864ccce390b9b0b11267ff1a97"; got != want {
		t.Errorf("cryptogram = %s, want %s", got, want)
	}
	p, err := DecryptCBC(kEnc, c)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(p), "31323334353637388000000000000000"; got != want {
		t.Errorf("decrypted = %s, want %s", got, want)
	}
	macIn := unhex(t, "0000000000000002 0c20008180000000 871101c0c020864ccce390b9b0b11267ff1a97 8000000000")
	if got, want := hex.EncodeToString(RetailMAC(kMAC, macIn)), "0d437728fb19a1a4"; got != want {
		t.Errorf("MAC = %s, want %s", got, want)
	}
}

var startSSC = [8]byte{0, 0, 0, 0, 0, 0, 0, 1}

// sessionTable is the six-line table of §14.2, starting at SSC …01.
var sessionTable = []struct {
	name      string
	command   bool
	plain     string // command APDU or response data
	sw        apdu.StatusWord
	protected string // command APDU or response data (the SW equals sw)
}{
	{"VERIFY", true, "0020008108 3132333435363738", 0, "0c2000811d871101c0c020864ccce390b9b0b11267ff1a978e080d437728fb19a1a400"},
	{"answer 9000", false, "", 0x9000, "990290008e086ddd6702023f1f87"},
	{"READ BINARY", true, "00b0000080", 0, "0cb000000d9701808e08a7de171b6c9ef93200"},
	{"answer data", false, "3082010a0282010100", 0x9000, "871101ec3e92af83b497e7bd6fde3b418da024990290008e08380765f0264858e6"},
	{"MSE SET", true, "002241a406 800102840181", 0, "0c2241a41587090143425fc2d3c347378e081ba8d5b80dd7e82f00"},
	{"GET CHALLENGE", true, "0084000008", 0, "0c8400000d9701088e089b6bbc9581b2b2fc00"},
}

func TestSessionVectorsHost(t *testing.T) {
	kEnc, kMAC := vectorKeys()
	s := NewSession(kEnc, kMAC, startSSC)
	for i, row := range sessionTable {
		if row.command {
			c, err := apdu.ParseCommand(unhex(t, row.plain))
			if err != nil {
				t.Fatal(err)
			}
			pc, err := s.ProtectCommand(c)
			if err != nil {
				t.Fatalf("%s: ProtectCommand: %v", row.name, err)
			}
			got, err := pc.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, row.protected); !bytes.Equal(got, want) {
				t.Errorf("%s: protected = %x, want %x", row.name, got, want)
			}
		} else {
			r, err := s.UnprotectResponse(apdu.Response{Data: unhex(t, row.protected), SW: row.sw})
			if err != nil {
				t.Fatalf("%s: UnprotectResponse: %v", row.name, err)
			}
			if r.SW != row.sw || !bytes.Equal(r.Data, unhex(t, row.plain)) {
				t.Errorf("%s: got data %x SW %v, want %s %v", row.name, r.Data, r.SW, row.plain, row.sw)
			}
		}
		if got, want := s.SSC(), [8]byte{7: byte(2 + i)}; got != want {
			t.Errorf("%s: SSC after = %x, want %x", row.name, got, want)
		}
	}
}

func TestSessionVectorsCard(t *testing.T) {
	kEnc, kMAC := vectorKeys()
	s := NewSession(kEnc, kMAC, startSSC)
	for _, row := range sessionTable {
		if row.command {
			pc, err := apdu.ParseCommand(unhex(t, row.protected))
			if err != nil {
				t.Fatal(err)
			}
			c, err := s.UnprotectCommand(pc)
			if err != nil {
				t.Fatalf("%s: UnprotectCommand: %v", row.name, err)
			}
			got, err := c.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, row.plain); !bytes.Equal(got, want) {
				t.Errorf("%s: plain = %x, want %x", row.name, got, want)
			}
		} else {
			r, err := s.ProtectResponse(apdu.Response{Data: unhex(t, row.plain), SW: row.sw})
			if err != nil {
				t.Fatalf("%s: ProtectResponse: %v", row.name, err)
			}
			want := append(unhex(t, row.protected), row.sw.SW1(), row.sw.SW2())
			if got := r.Bytes(); !bytes.Equal(got, want) {
				t.Errorf("%s: protected = %x, want %x", row.name, got, want)
			}
		}
	}
}
