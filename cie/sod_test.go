package cie

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"maps"
	"math/big"
	"sync"
	"testing"
	"time"
)

// TestVerifySODOnSimulator checks the simulator's SOD against its files.
func TestVerifySODOnSimulator(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "gemalto", nil)
	c := openSim(t, sim, nil)

	// Without the PIN: EF.CertCIE is not read, everything else matches.
	rep, err := c.VerifySOD(ctx)
	if err != nil {
		t.Fatalf("VerifySOD: %v", err)
	}
	if !rep.SignatureValid || rep.CSCAValidated || rep.Note == "" || !rep.DSCertificateValidNow {
		t.Fatalf("report %+v", rep)
	}
	if !bytes.Equal(rep.SOD.Signer.Raw, testState(t).DSCert.Raw) {
		t.Error("the SOD's signer is not the state's Document Signer")
	}
	want := map[int]DGStatus{0xA1: DGMatch, 0xA2: DGMatch, 0xA3: DGNotRead, 0xA4: DGMatch, 0xA5: DGMatch, 0x1B: DGMatch}
	checkDGs(t, rep, want)

	// With the PIN: all six match. EF.DH is cached, so the session and the
	// PIN verification survive.
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatal(err)
	}
	if rep, err = c.VerifySOD(ctx); err != nil {
		t.Fatalf("VerifySOD with the PIN: %v", err)
	}
	want[0xA3] = DGMatch
	checkDGs(t, rep, want)
	if _, err := c.Certificate(ctx); err != nil {
		t.Fatalf("Certificate after VerifySOD: %v", err)
	}

	// On a fresh Card with the PIN verified, EF.DH is read last and ends
	// the session: the PIN is needed again.
	c2 := openSim(t, sim, nil)
	if err := c2.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatal(err)
	}
	if rep, err = c2.VerifySOD(ctx); err != nil {
		t.Fatalf("VerifySOD (fresh card): %v", err)
	}
	checkDGs(t, rep, want)
	if _, err := c2.Certificate(ctx); !errors.Is(err, ErrPINRequired) {
		t.Fatalf("Certificate after reading EF.DH: %v, want ErrPINRequired", err)
	}
	raw, err := c2.ReadSOD(ctx)
	if err != nil || !bytes.Equal(raw, rep.SOD.Raw) {
		t.Fatalf("ReadSOD: %v", err)
	}
}

func checkDGs(t *testing.T, rep *SODReport, want map[int]DGStatus) {
	t.Helper()
	got := map[int]DGStatus{}
	for _, dg := range rep.DataGroups {
		got[dg.Number] = dg.Status
	}
	for n, st := range want {
		if got[n] != st {
			t.Errorf("data group %X: %v, want %v", n, got[n], st)
		}
	}
	if len(got) != len(want) {
		t.Errorf("data groups %v, want %v", got, want)
	}
}

// Test Document Signer (generated once per test binary).
var (
	dsOnce sync.Once
	dsKey  *rsa.PrivateKey
	dsCert *x509.Certificate
)

func testDS(t testing.TB) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	dsOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "Test Document Signer"},
			NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			panic(err)
		}
		dsKey = k
		dsCert, _ = x509.ParseCertificate(der)
	})
	return dsKey, dsCert
}

type algID struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

// buildSOD builds a SOD over dgs in the SHA-256/PKCS#1 v1.5 or the
// SHA-512/PSS flavour of §3.2.
func buildSOD(t testing.TB, pss bool, dgs map[int][]byte) []byte {
	t.Helper()
	key, cert := testDS(t)
	h, hashOID, ldsVersion := crypto.SHA256, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, 0
	if pss {
		h, hashOID, ldsVersion = crypto.SHA512, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, 1
	}
	null := asn1.RawValue{Tag: asn1.TagNull}
	hashAlg := algID{Algorithm: hashOID, Parameters: null}
	type dgHash struct {
		Number int
		Hash   []byte
	}
	var hashes []dgHash
	for _, n := range []int{0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0x1B} {
		if data, ok := dgs[n]; ok {
			d := h.New()
			d.Write(data)
			hashes = append(hashes, dgHash{n, d.Sum(nil)})
		}
	}
	lds, err := asn1.Marshal(struct {
		Version int
		Alg     algID
		Hashes  []dgHash
	}{ldsVersion, hashAlg, hashes})
	if err != nil {
		t.Fatal(err)
	}
	d := h.New()
	d.Write(lds)
	type attr struct {
		Type   asn1.ObjectIdentifier
		Values []asn1.RawValue `asn1:"set"`
	}
	ctVal, _ := asn1.Marshal(oidLDSSecurityObject)
	mdVal, _ := asn1.Marshal(d.Sum(nil))
	var attrs []byte
	for _, a := range []attr{
		{oidContentType, []asn1.RawValue{{FullBytes: ctVal}}},
		{oidMessageDigest, []asn1.RawValue{{FullBytes: mdVal}}},
	} {
		b, err := asn1.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		attrs = append(attrs, b...)
	}
	set, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: attrs})
	d = h.New()
	d.Write(set)
	var sig []byte
	var sigAlg algID
	if pss {
		sig, err = rsa.SignPSS(rand.Reader, key, h, d.Sum(nil), &rsa.PSSOptions{SaltLength: 64, Hash: h})
		mgf, _ := asn1.Marshal(hashAlg)
		params, _ := asn1.Marshal(struct {
			Hash algID `asn1:"explicit,tag:0"`
			MGF  algID `asn1:"explicit,tag:1"`
			Salt int   `asn1:"explicit,tag:2"`
		}{hashAlg, algID{oidMGF1, asn1.RawValue{FullBytes: mgf}}, 64})
		sigAlg = algID{oidRSASSAPSS, asn1.RawValue{FullBytes: params}}
	} else {
		sig, err = rsa.SignPKCS1v15(nil, key, h, d.Sum(nil))
		sigAlg = algID{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, null}
	}
	if err != nil {
		t.Fatal(err)
	}
	signed := explicit0(attrs)
	type signerInfoOut struct {
		Version int
		SID     struct {
			Issuer asn1.RawValue
			Serial *big.Int
		}
		DigestAlg algID
		Signed    asn1.RawValue
		SigAlg    algID
		Sig       []byte
	}
	si := signerInfoOut{Version: 1, DigestAlg: hashAlg, Signed: signed, SigAlg: sigAlg, Sig: sig}
	si.SID.Issuer = asn1.RawValue{FullBytes: cert.RawIssuer}
	si.SID.Serial = cert.SerialNumber
	econtent, _ := asn1.Marshal(lds)
	sd, err := asn1.Marshal(struct {
		Version int
		Digests []algID `asn1:"set"`
		Encap   struct {
			Type    asn1.ObjectIdentifier
			Content asn1.RawValue
		}
		Certs asn1.RawValue
		SIs   []signerInfoOut `asn1:"set"`
	}{
		Version: 3, Digests: []algID{hashAlg},
		Encap: struct {
			Type    asn1.ObjectIdentifier
			Content asn1.RawValue
		}{oidLDSSecurityObject, explicit0(econtent)},
		Certs: explicit0(cert.Raw),
		SIs:   []signerInfoOut{si},
	})
	if err != nil {
		t.Fatal(err)
	}
	ci, err := asn1.Marshal(struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue
	}{oidSignedData, explicit0(sd)})
	if err != nil {
		t.Fatal(err)
	}
	return ci
}

// explicit0 wraps content in a constructed [0] tag.
func explicit0(content []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: content}
}

// TestSODFlavours verifies hand-built SODs of both flavours and catches
// tampering.
func TestSODFlavours(t *testing.T) {
	files := map[int][]byte{0xA1: []byte("123456789012"), 0xA2: []byte("CA00000AA"), 0xA3: {0x30, 0x03, 1, 2, 3}, 0xA4: {0x30, 0x00}, 0xA5: {0x30, 0x01, 0x00}, 0x1B: {0x30, 0x02, 1, 2}}
	sf := func(over map[int][]byte) []sodFile {
		var out []sodFile
		for _, n := range []int{0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0x1B} {
			f := sodFile{number: n, name: "file", data: files[n]}
			if d, ok := over[n]; ok {
				f.data = d
			}
			if n == 0xA3 {
				f.reason = "not read"
			}
			out = append(out, f)
		}
		return out
	}
	for _, pss := range []bool{false, true} {
		raw := buildSOD(t, pss, files)
		s, err := ParseSOD(append(bytes.Clone(raw), 0, 0, 0, 0)) // file padding
		if err != nil {
			t.Fatalf("pss %v: ParseSOD: %v", pss, err)
		}
		wantHash, wantV := crypto.SHA256, 0
		if pss {
			wantHash, wantV = crypto.SHA512, 1
		}
		if s.HashAlgorithm != wantHash || s.LDSVersion != wantV || !bytes.Equal(s.Raw, raw) {
			t.Fatalf("pss %v: hash %v, version %d", pss, s.HashAlgorithm, s.LDSVersion)
		}
		rep := checkSOD(s, sf(nil), testNow)
		if !rep.OK() || !rep.SignatureValid {
			t.Fatalf("pss %v: report not OK: %+v", pss, rep)
		}
		checkDGs(t, rep, map[int]DGStatus{0xA1: DGMatch, 0xA2: DGMatch, 0xA3: DGNotRead, 0xA4: DGMatch, 0xA5: DGMatch, 0x1B: DGMatch})

		// A data group the SOD does not list.
		partial := maps.Clone(files)
		delete(partial, 0xA5)
		sp, err := ParseSOD(buildSOD(t, pss, partial))
		if err != nil {
			t.Fatal(err)
		}
		if rep := checkSOD(sp, sf(nil), testNow); rep.OK() || rep.DataGroups[4].Status != DGMissing {
			t.Fatalf("pss %v: a missing data group was not reported", pss)
		}

		// A file that differs from its hash.
		rep = checkSOD(s, sf(map[int][]byte{0xA2: []byte("CA99999ZZ")}), testNow)
		if rep.OK() || rep.DataGroups[1].Status != DGMismatch {
			t.Fatalf("pss %v: a changed EF.Seriale was not caught", pss)
		}
		// A flipped bit in the signature.
		bad := bytes.Clone(raw)
		i := bytes.Index(bad, s.signature)
		bad[i+10] ^= 1
		s2, err := ParseSOD(bad)
		if err != nil {
			t.Fatal(err)
		}
		if rep := checkSOD(s2, sf(nil), testNow); rep.SignatureValid || rep.OK() {
			t.Fatalf("pss %v: a bad signature verified", pss)
		}
		// A changed hash inside the signed content breaks messageDigest.
		bad = bytes.Clone(raw)
		h := sha256.Sum256(files[0xA1])
		if pss {
			h5 := sha512.Sum512(files[0xA1])
			i = bytes.Index(bad, h5[:])
		} else {
			i = bytes.Index(bad, h[:])
		}
		bad[i] ^= 1
		if s3, err := ParseSOD(bad); err != nil || s3.VerifySignature() == nil {
			t.Fatalf("pss %v: a changed data group hash passed the signature check (%v)", pss, err)
		}
	}
}
