package cie

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/tlv"
)

// TestFamilyTable: every ATR of architecture.md finds its row, TCK is
// ignored, unknown ITJ4 letters fall to the generic JCOP4 row, and nothing
// matches a prefix, a longer ATR or a zeroed one.
func TestFamilyTable(t *testing.T) {
	want := map[string]string{
		"3B 8E 80 01 80 31 80 65 49 54 4E 58 50 12 0F FF 82 90 F0":    "nxp",
		"3B 8F 80 01 80 31 80 65 B0 85 04 00 11 12 0F FF 82 90 00 8A": "gemalto",
		"3B 8F 80 01 80 31 80 65 B0 85 03 00 EF 12 0F FF 82 90 00 73": "gemalto2",
		"3B 8B 80 01 80 66 47 50 00 B8 00 7F 82 90 00 2E":             "stm",
		"3B 80 80 01 01": "stm2",
		"3B 8B 80 01 80 66 47 50 00 B8 00 94 82 90 00 C5":             "stm3",
		"3B 8F 80 01 80 31 80 65 49 54 4A 34 41 12 0F FF 82 90 00 88": "actalis",
		"3B 8F 80 01 80 31 80 65 49 54 4A 34 43 12 0F FF 82 90 00 8A": "actalis2023",
		"3B 8F 80 01 80 31 80 65 49 54 4A 34 4C 12 0F FF 82 90 00 85": "actalis-b946",
		"3B 8F 80 01 80 31 80 65 49 54 4A 34 42 12 0F FF 82 90 00 8B": "bit4id",
		"3B 8F 80 01 80 31 80 65 49 54 4A 34 44 12 0F FF 82 90 00 8D": "bit4id2023",
		"3B 8F 80 01 80 31 80 65 49 54 4A 34 49 12 0F FF 82 90 00 80": "bit4id-b9547",
		// TCK ignored.
		"3B 8F 80 01 80 31 80 65 B0 85 04 00 11 12 0F FF 82 90 00 00": "gemalto",
		"3B 80 80 01 00": "stm2",
		// A future ITJ4 letter → generic JCOP4.
		"3B 8F 80 01 80 31 80 65 49 54 4A 34 5A 12 0F FF 82 90 00 99": "jcop4",
		// Not CIE ATRs.
		"3B 8F 80 01 00 00 00 00 00 00 00 00 00 00 00 00 00 FF 82 90 00 E3": "",
		"3B 8F 80 01 80 31 80 65 B0 85 04 00 11 12 0F FF 82 90 00":          "", // truncated
		"3B 8F 80 01 80 31 80 65 B0 85 04 00 11 12 0F FF 82 90 00 8A 00":    "", // longer
		"3B 8E 80 01 80 31 80 65 49 54 4E 58 51 12 0F FF 82 90 F0":          "", // ITNXQ
		"3B 88 80 01 54 45 53 54 43 41 52 44 0B":                            "",
		"":                                                                  "",
	}
	for atrHex, id := range want {
		atr := mustHex(strings.ReplaceAll(atrHex, " ", ""))
		f, ok := FamilyByATR(atr)
		if f.ID != id || ok != (id != "") {
			t.Errorf("ATR %s: family %q, want %q", atrHex, f.ID, id)
		}
	}
	fs := Families()
	if len(fs) != 13 || fs[0].ID != "nxp" || fs[12].ID != "jcop4" {
		t.Fatalf("Families: %d rows", len(fs))
	}
	fs[1].ATR[0] = 0 // a copy: the table must not change
	if f, _ := FamilyByATR(mustHex("3B8F800180318065B085040011120FFF8290008A")); f.ID != "gemalto" {
		t.Fatal("Families returned the table itself")
	}
	for _, f := range fs {
		if f.Select == 0 || f.DH == 0 || f.Name == "" {
			t.Errorf("row %q incomplete", f.ID)
		}
	}
}

// TestEFATR matches EF.ATR contents in the order of §1.3.
func TestEFATR(t *testing.T) {
	for _, tc := range []struct {
		content []byte
		want    string
	}{
		{efATRSignatures[0].content, "actalis"},
		{append(mustHex("00"), efATRSignatures[1].content...), "stm"},
		{append(bytes.Clone(efATRSignatures[2].content), 0x01, 0xC0), "nxp"},
		{mustHex("8000430147039441C0"), "gemalto2"},
		{[]byte("xxIasEccRootxx"), "gemalto"},
		{mustHex("8000430100"), ""},
	} {
		f, ok := familyByEFATR(tc.content)
		if f.ID != tc.want || ok != (tc.want != "") {
			t.Errorf("EF.ATR % X: %q, want %q", tc.content, f.ID, tc.want)
		}
	}
}

func TestValidatePIN(t *testing.T) {
	for pin, ok := range map[string]bool{
		"12345678": true, "00000000": true, "1234567": false, "123456789": false, "1234567a": false,
		"": false, "１2345678": false, "1234 678": false,
	} {
		if err := ValidatePIN([]byte(pin)); (err == nil) != ok || (err != nil && !errors.Is(err, ErrInvalidPIN)) {
			t.Errorf("ValidatePIN(%q) = %v", pin, err)
		}
	}
	for pin, ok := range map[string]bool{
		"24681357": true, "12345679": true, "13572468": true, "90123456": true,
		"11111111": false, "12345678": false, "23456789": false, "01234567": false,
		"87654321": false, "98765432": false, "76543210": false, "1234567": false, "abcdefgh": false,
	} {
		err := ValidateNewPIN([]byte(pin))
		if (err == nil) != ok || (err != nil && (!errors.Is(err, ErrInvalidPIN) || !strings.HasPrefix(err.Error(), "cie: "))) {
			t.Errorf("ValidateNewPIN(%q) = %v", pin, err)
		}
	}
}

func TestPINErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		sw   apdu.StatusWord
		ref  PINRef
		want string
	}{
		{0x63C2, PIN, "wrong PIN: 2 tries left"},
		{0x63C1, PIN, "wrong PIN: 1 try left"},
		{0x63C0, PIN, "PIN blocked: unblock it with the PUK"},
		{0x6983, PIN, "PIN blocked: unblock it with the PUK"},
		{0x63C9, PUK, "wrong PUK: 9 tries left"},
		{0x6983, PUK, "PUK blocked: the card must be replaced at the municipality"},
		{0x6300, PIN, "wrong PIN"},
	} {
		err := pinError(tc.ref, tc.sw)
		var pe *PINError
		if !errors.As(err, &pe) || err.Error() != tc.want || !errors.Is(err, tc.sw) {
			t.Errorf("SW %04X: %v, want %q", uint16(tc.sw), err, tc.want)
		}
	}
	for _, sw := range []apdu.StatusWord{0x6700, 0x6A80} {
		if err := pinError(PIN, sw); !errors.Is(err, ErrInvalidPIN) {
			t.Errorf("SW %04X: %v, want ErrInvalidPIN", uint16(sw), err)
		}
	}
	if err := pinError(PIN, 0x6982); err != nil {
		t.Errorf("6982 mapped to %v", err)
	}
}

// scriptCard serves one EF by READ BINARY in plain, like the card of
// architecture.md (6282 when fewer than Ne bytes are left, 6B00 beyond).
type scriptCard struct {
	file  []byte
	reads []int // Ne of every READ BINARY
}

func (s *scriptCard) Transmit(_ context.Context, b []byte) ([]byte, error) {
	c, err := apdu.ParseCommand(b)
	if err != nil {
		return nil, err
	}
	switch c.INS {
	case insSelect:
		return []byte{0x90, 0x00}, nil
	case insReadBinary:
		s.reads = append(s.reads, c.Ne)
		off := int(c.P1)<<8 | int(c.P2)
		if off >= len(s.file) {
			return []byte{0x6B, 0x00}, nil
		}
		end := min(off+c.Ne, len(s.file))
		sw := []byte{0x90, 0x00}
		if end-off < c.Ne {
			sw = []byte{0x62, 0x82}
		}
		return append(bytes.Clone(s.file[off:end]), sw...), nil
	}
	return []byte{0x6D, 0x00}, nil
}

// TestReadEFBoundaries reads DER files around the chunk size.
func TestReadEFBoundaries(t *testing.T) {
	der := func(n int) []byte { // a DER object of n bytes in total
		for hdr := 2; hdr <= 4; hdr++ {
			v := n - hdr
			var h []byte
			switch {
			case hdr == 2 && v < 0x80:
				h = []byte{0x30, byte(v)}
			case hdr == 3 && v >= 0x80 && v < 0x100:
				h = []byte{0x30, 0x81, byte(v)}
			case hdr == 4 && v >= 0x100:
				h = []byte{0x30, 0x82, byte(v >> 8), byte(v)}
			default:
				continue
			}
			return append(h, bytes.Repeat([]byte{0xAB}, v)...)
		}
		panic(n)
	}
	for _, tc := range []struct {
		total, pad int
		reads      []int
	}{
		{2, 0, []int{256}},
		{255, 10, []int{256}},
		{256, 0, []int{256}},
		{256, 100, []int{256}},
		{257, 0, []int{256, 1}},
		{512, 3, []int{256, 256}},
		{513, 0, []int{256, 256, 1}},
		{1500, 500, []int{256, 256, 256, 256, 256, 220}},
	} {
		file := append(der(tc.total), make([]byte, tc.pad)...)
		sc := &scriptCard{file: file}
		c := &Card{gr: apdu.NewGetResponse(sc), log: discardLogger()}
		got, err := c.readEF(context.Background(), 0x1003, readDER)
		if err != nil || !bytes.Equal(got, file[:tc.total]) {
			t.Errorf("DER of %d (+%d padding): %d bytes, %v", tc.total, tc.pad, len(got), err)
		}
		if fmt.Sprint(sc.reads) != fmt.Sprint(tc.reads) {
			t.Errorf("DER of %d: reads %v, want %v", tc.total, sc.reads, tc.reads)
		}
	}
	// A file shorter than its DER header says.
	sc := &scriptCard{file: der(600)[:400]}
	c := &Card{gr: apdu.NewGetResponse(sc), log: discardLogger()}
	if _, err := c.readEF(context.Background(), 0x1003, readDER); !errors.Is(err, errShortFile) {
		t.Errorf("truncated file: %v", err)
	}
	// Fixed sizes and read-to-end.
	sc = &scriptCard{file: []byte("0123456789AB padding")}
	if got, err := c.withGR(sc).readEF(context.Background(), 0x1001, 12); err != nil || string(got) != "0123456789AB" {
		t.Errorf("fixed size: %q, %v", got, err)
	}
	sc = &scriptCard{file: []byte("short")}
	if _, err := c.withGR(sc).readEF(context.Background(), 0x1001, 12); !errors.Is(err, errShortFile) {
		t.Errorf("short fixed-size file: %v", err)
	}
	for _, n := range []int{5, 256, 300, 512} {
		sc = &scriptCard{file: bytes.Repeat([]byte{0x80}, n)}
		if got, err := c.withGR(sc).readEF(context.Background(), 0x2F01, readToEOF); err != nil || len(got) != n {
			t.Errorf("read to EOF of %d bytes: %d, %v", n, len(got), err)
		}
	}
}

func (c *Card) withGR(t apdu.Transport) *Card {
	c.gr = apdu.NewGetResponse(t)
	return c
}

func TestBERTotalLength(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  error
	}{
		{"3000", 2, nil},
		{"307F", 129, nil},
		{"308180", 131, nil},
		{"30820100", 260, nil},
		{"7F2182015C", 353, nil},
		{"5F", 0, errNeedMore},
		{"3082", 0, errNeedMore},
		{"3080", 0, apdu.ErrMalformed},
		{"3085FFFFFFFFFF", 0, apdu.ErrMalformed},
		{"30840001000000", 0, apdu.ErrMalformed},
		{"00", 0, apdu.ErrMalformed},
		{"", 0, errNeedMore},
	} {
		n, err := berTotalLength(mustHex(tc.in))
		if n != tc.want || (tc.err == nil) != (err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("%s: %d, %v; want %d, %v", tc.in, n, err, tc.want, tc.err)
		}
	}
}

// constReader yields one byte value forever.
type constReader byte

func (r constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// seqReader yields its chunks in order.
type seqReader struct{ chunks [][]byte }

func (r *seqReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks = r.chunks[1:]
	return n, nil
}

// TestDHExponentRange: x is in [2, q−2]: all-zero draws give 2, the top
// accepted draw gives q−2, draws ≥ q−3 are rejected.
func TestDHExponentRange(t *testing.T) {
	grp := testGroup(t)
	q := new(big.Int).SetBytes(grp.q)
	x, err := grp.dhExponent(constReader(0))
	if err != nil || new(big.Int).SetBytes(x).Cmp(big.NewInt(2)) != 0 || len(x) != len(grp.q) {
		t.Fatalf("zero draw: %X, %v", x, err)
	}
	top := new(big.Int).Sub(q, big.NewInt(4)).FillBytes(make([]byte, len(grp.q)))  // q−4 → x = q−2
	over := new(big.Int).Sub(q, big.NewInt(3)).FillBytes(make([]byte, len(grp.q))) // rejected
	x, err = grp.dhExponent(&seqReader{chunks: [][]byte{over, top}})
	if err != nil || new(big.Int).SetBytes(x).Cmp(new(big.Int).Sub(q, big.NewInt(2))) != 0 {
		t.Fatalf("top draw: %X, %v", x, err)
	}
	if _, err := grp.dhExponent(constReader(0xFF)); err == nil {
		t.Fatal("a source of all-FF bytes gave an exponent")
	}
	if _, err := grp.dhExponent(&seqReader{}); err == nil {
		t.Fatal("an empty source gave an exponent")
	}
}

// TestI2OSP: DH outputs always have the length of p, even when the value
// is small (§13 item 2).
func TestI2OSP(t *testing.T) {
	grp := testGroup(t)
	out, err := grp.modExp([]byte{2}, []byte{1})
	if err != nil || len(out) != len(grp.p) || out[len(out)-1] != 2 || !bytes.Equal(out[:len(out)-1], make([]byte, len(out)-1)) {
		t.Fatalf("2^1 mod p = %X, %v", out, err)
	}
	// Y_ICC range checks.
	pm1 := new(big.Int).Sub(new(big.Int).SetBytes(grp.p), big.NewInt(1)).Bytes()
	for _, y := range [][]byte{{0}, {1}, pm1, grp.p} {
		if _, err := grp.dhShared(y, []byte{3}); err == nil {
			t.Errorf("Y_ICC %X accepted", y[:1])
		}
	}
}

// testGroup is the simulator state's DH group as a card would send it.
func testGroup(t testing.TB) *dhGroup {
	st := testState(t)
	p := st.DH.P.Bytes()
	grp, err := newDHGroup(st.DH.G.FillBytes(make([]byte, len(p))), p, st.DH.Q.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return grp
}

// TestCVCertificateAgainstState: the CV certificate recovers with the
// state's IFD-CA public key into the body of §6.2.
func TestCVCertificateAgainstState(t *testing.T) {
	st := testState(t)
	ca := &caKey{n: st.IFDCA.N.Bytes(), e: st.IFDCA.E.Bytes(), car: []byte("ITCAR001"), aid: aidCIE}
	cert, err := cvCertificate(ca)
	if err != nil {
		t.Fatal(err)
	}
	// §6.2 prints "7F 21 82 01 5C … (352 bytes)", but 5F37 82 01 00 <S>
	// is 261 bytes, not 260: the encoding is 7F 21 82 01 5D, 354 bytes.
	if len(cert) != 354 || !bytes.HasPrefix(cert, mustHex("7F2182015D5F37820100")) {
		t.Fatalf("CV certificate of %d bytes: % X…", len(cert), cert[:10])
	}
	s := cert[10 : 10+256]
	m := new(big.Int).Exp(new(big.Int).SetBytes(s), st.IFDCA.E, st.IFDCA.N).FillBytes(make([]byte, 256))
	body := cvBody(ca)
	if len(body) != 297 || m[0] != 0x6A || m[255] != 0xBC || !bytes.Equal(m[1:223], body[:222]) {
		t.Fatalf("recovered message does not carry the body")
	}
	h := sha256.Sum256(body)
	if !bytes.Equal(m[223:255], h[:]) || !bytes.Equal(cert[10+256+3:10+256+3+75], body[222:]) {
		t.Fatal("hash or remainder wrong")
	}
	// A CA key that is not the published one is caught before sending.
	other := &caKey{n: st.ChipKey.N.Bytes(), e: big.NewInt(65537).Bytes(), car: ca.car, aid: ca.aid}
	if _, err := cvCertificate(other); err == nil {
		t.Fatal("a foreign IFD-CA key signed")
	}
}

// chipAnswer builds the chip's answer with the state's chip key.
func chipAnswer(t testing.TB, sn, rndIFD []byte, grp *dhGroup, dh dhResult) []byte {
	st := testState(t)
	prnd2 := bytes.Repeat([]byte{0x5A}, 256-34)
	h := sha256.New()
	for _, p := range [][]byte{prnd2, dh.yICC, sn, rndIFD, dh.yIFD, grp.g, grp.p, grp.q} {
		h.Write(p)
	}
	m := append(append(append([]byte{0x6A}, prnd2...), h.Sum(nil)...), 0xBC)
	sig := new(big.Int).Exp(new(big.Int).SetBytes(m), st.ChipKey.D, st.ChipKey.N).FillBytes(make([]byte, 256))
	return append(bytes.Clone(sn), sig...)
}

func TestCheckChip(t *testing.T) {
	st := testState(t)
	grp := testGroup(t)
	chip := &rsaFile{key: &st.ChipKey.PublicKey}
	snICC := mustHex("000102030405060708090A0B")
	rnd := mustHex("1122334455667788")
	dh := dhResult{yIFD: bytes.Repeat([]byte{1}, 256), yICC: bytes.Repeat([]byte{2}, 256)}
	good := chipAnswer(t, snICC[4:12], rnd, grp, dh)
	if err := checkChip(chip, snICC, good, rnd, grp, dh); err != nil {
		t.Fatalf("good answer: %v", err)
	}
	for name, tamper := range map[string]func() ([]byte, []byte, dhResult){
		"other serial": func() ([]byte, []byte, dhResult) {
			return chipAnswer(t, mustHex("FFFFFFFFFFFFFFFF"), rnd, grp, dh), rnd, dh
		},
		"other rndIFD": func() ([]byte, []byte, dhResult) { return good, mustHex("1122334455667789"), dh },
		"other Y_IFD":  func() ([]byte, []byte, dhResult) { return good, rnd, dhResult{yIFD: dh.yICC, yICC: dh.yICC} },
		"flipped bit":  func() ([]byte, []byte, dhResult) { b := bytes.Clone(good); b[100] ^= 1; return b, rnd, dh },
		"short answer": func() ([]byte, []byte, dhResult) { return good[:200], rnd, dh },
		"sig ≥ modulus": func() ([]byte, []byte, dhResult) {
			return append(bytes.Clone(good[:8]), bytes.Repeat([]byte{0xFF}, 256)...), rnd, dh
		},
	} {
		ans, r, d := tamper()
		if err := checkChip(chip, snICC, ans, r, grp, d); !errors.Is(err, ErrChipAuthentication) {
			t.Errorf("%s: %v, want ErrChipAuthentication", name, err)
		}
	}
}

// TestCloneCardFailsDAPP: a chip whose key does not match EF.Int.Kpub
// (here: the host believes another key) fails with ErrChipAuthentication.
func TestCloneCardFailsDAPP(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "nxp", nil)
	c := openSim(t, sim, nil)
	if _, err := c.ChipPublicKey(ctx); err != nil {
		t.Fatal(err)
	}
	c.chip = &rsaFile{key: &testState(t).ServiziKey.PublicKey}
	err := c.VerifyPIN(ctx, testPIN)
	if !errors.Is(err, ErrChipAuthentication) {
		t.Fatalf("VerifyPIN against a clone: %v, want ErrChipAuthentication", err)
	}
	if pin, _ := sim.Tries(); pin != 3 || c.smt != nil {
		t.Fatalf("the PIN was sent (tries %d) or the session kept", pin)
	}
}

// TestSignerHashes: every supported hash gives a signature that verifies;
// PSS is refused with a clear error.
func TestSignerHashes(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "stm2", nil)
	c := openSim(t, sim, nil)
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatal(err)
	}
	cert, err := c.Certificate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Signer(cert)
	var _ crypto.Signer = s
	pub := s.Public().(*rsa.PublicKey)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		d := h.New()
		d.Write([]byte("message"))
		digest := d.Sum(nil)
		sig, err := s.Sign(nil, digest, h)
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		if err := rsa.VerifyPKCS1v15(pub, h, digest, sig); err != nil {
			t.Errorf("%v: signature does not verify: %v", h, err)
		}
	}
	// Hash 0: the data is signed as is (TLS 1.0 MD5+SHA1).
	raw := bytes.Repeat([]byte{7}, 36)
	sig, err := s.Sign(nil, raw, crypto.Hash(0))
	if err != nil || rsa.VerifyPKCS1v15(pub, crypto.Hash(0), raw, sig) != nil {
		t.Errorf("raw signature: %v", err)
	}
	before := sim.Stats().APDUs
	_, err = s.Sign(nil, make([]byte, 32), &rsa.PSSOptions{Hash: crypto.SHA256})
	if !errors.Is(err, ErrPSSNotSupported) || !strings.Contains(err.Error(), "not supported by the card") {
		t.Errorf("PSS: %v", err)
	}
	if _, err := s.Sign(nil, make([]byte, 31), crypto.SHA256); err == nil {
		t.Error("a 31-byte SHA-256 digest was signed")
	}
	if _, err := s.Sign(nil, make([]byte, 16), crypto.MD5); err == nil {
		t.Error("MD5 was signed")
	}
	if _, err := c.SignDigestInfo(ctx, make([]byte, 246)); err == nil {
		t.Error("246 bytes were signed")
	}
	if n := sim.Stats().APDUs - before; n != 0 {
		t.Errorf("%d APDUs sent for refused inputs", n)
	}
}

func TestHolderFromCommonName(t *testing.T) {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "RSSMRA80A01H501U/123456789012", Names: []pkix.AttributeTypeAndValue{
		{Type: asn1.ObjectIdentifier{2, 5, 4, 42}, Value: "MARIO"},
		{Type: asn1.ObjectIdentifier{2, 5, 4, 4}, Value: "ROSSI"},
	}}}
	if h := HolderFromCertificate(cert); h != (Holder{"MARIO", "ROSSI", "RSSMRA80A01H501U"}) {
		t.Fatalf("%+v", h)
	}
	if h := HolderFromCertificate(nil); h != (Holder{}) {
		t.Fatalf("nil certificate: %+v", h)
	}
}

// TestParsers covers the shapes the card answers in, and their refusals.
func TestParsers(t *testing.T) {
	grp := testGroup(t)
	g, p, q := grp.g, grp.p, grp.q
	combined := tlv.Encode(tagSDOTemplate, tlv.Encode(tagDHParams, tlv.Encode(tagDHValues,
		tlv.Encode(tagDHG, g), tlv.Encode(tagDHP, p), tlv.Encode(tagDHQ, q))))
	got, err := parseDHCombined(combined)
	if err != nil || !bytes.Equal(got.p, p) || !bytes.Equal(got.g, g) || !bytes.Equal(got.q, q) {
		t.Fatalf("combined: %v", err)
	}
	// Untagged order g, p, q.
	untagged := tlv.Encode(tagSDOTemplate, tlv.Encode(tagDHParams, tlv.Encode(tagDHValues,
		tlv.Encode(0x81, g), tlv.Encode(0x82, p), tlv.Encode(0x83, q))))
	if got, err := parseDHCombined(untagged); err != nil || !bytes.Equal(got.q, q) {
		t.Fatalf("untagged combined: %v", err)
	}
	for name, bad := range map[string][]byte{
		"g = 1":     tlv.Encode(tagSDOTemplate, tlv.Encode(tagDHParams, tlv.Encode(tagDHValues, tlv.Encode(tagDHG, []byte{1}), tlv.Encode(tagDHP, p), tlv.Encode(tagDHQ, q)))),
		"even p":    tlv.Encode(tagSDOTemplate, tlv.Encode(tagDHParams, tlv.Encode(tagDHValues, tlv.Encode(tagDHG, g), tlv.Encode(tagDHP, append(bytes.Clone(p[:255]), 2)), tlv.Encode(tagDHQ, q)))),
		"q ≥ p":     tlv.Encode(tagSDOTemplate, tlv.Encode(tagDHParams, tlv.Encode(tagDHValues, tlv.Encode(tagDHG, g), tlv.Encode(tagDHP, p), tlv.Encode(tagDHQ, p)))),
		"no A3":     tlv.Encode(tagSDOTemplate, tlv.Encode(tagDHParams)),
		"truncated": combined[:100],
	} {
		if _, err := parseDHCombined(bad); err == nil {
			t.Errorf("combined %s accepted", name)
		}
	}
	// EF public key with a non-minimal INTEGER (leading zeros) and padding.
	st := testState(t)
	n := append([]byte{0, 0}, st.ChipKey.N.Bytes()...)
	file := append(tlv.Encode(tagSequence, tlv.Encode(tagInteger, n), tlv.Encode(tagInteger, []byte{0, 1, 0, 1})), make([]byte, 40)...)
	f, err := parseRSAPublicKeyFile(file)
	if err != nil || !f.key.Equal(&st.ChipKey.PublicKey) || len(f.der) != len(file)-40 {
		t.Fatalf("EF public key: %v", err)
	}
	if _, err := parseRSAPublicKeyFile(tlv.Encode(tagSequence, tlv.Encode(tagInteger, n), tlv.Encode(tagInteger, []byte{2}))); err == nil {
		t.Error("exponent 2 accepted")
	}
	// IFD-CA key object.
	caObj := func(n, chr []byte) []byte {
		return tlv.Encode(tagSDOTemplate, tlv.Encode(tagCAKeySDO, tlv.Encode(tagPublicKey,
			tlv.Encode(tagModulus, n), tlv.Encode(tagExponent, st.IFDCA.E.Bytes()),
			tlv.Encode(tagCHR, chr), tlv.Encode(tagCHA, append(bytes.Clone(aidCIE), 0x04)))))
	}
	chr := mustHex("000000004954434130303031")
	ca, err := parseCAKey(caObj(st.IFDCA.N.Bytes(), chr))
	if err != nil || !bytes.Equal(ca.car, chr[4:]) || !bytes.Equal(ca.aid, aidCIE) {
		t.Fatalf("CA key: %v", err)
	}
	if _, err := parseCAKey(caObj(append([]byte{0x50}, st.IFDCA.N.Bytes()[1:]...), chr)); err == nil {
		t.Error("CA modulus starting below 6A accepted")
	}
	if _, err := parseCAKey(caObj(st.IFDCA.N.Bytes(), chr[:4])); err == nil {
		t.Error("4-byte CHR accepted")
	}
	y := bytes.Repeat([]byte{9}, 256)
	if got, err := parseICCPublic(tlv.Encode(tagKAT, tlv.Encode(tagDHPublic, y))); err != nil || !bytes.Equal(got, y) {
		t.Fatalf("Y_ICC: %v", err)
	}
}
