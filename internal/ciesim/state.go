package ciesim

import (
	"crypto/dsa" //nolint:staticcheck // DSA parameter generation is exactly the FIPS 186 DH group the card needs (L2048 N256)
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Holder is the personal data printed on the simulated card and in its
// certificate. Empty fields take the defaults of DefaultHolder (IDServizi:
// 12 random digits when a State is created).
type Holder struct {
	GivenName  string `json:"given_name"`
	Surname    string `json:"surname"`
	FiscalCode string `json:"fiscal_code"` // codice fiscale, 16 characters
	CardNumber string `json:"card_number"` // document number, 9 characters, e.g. "CA00000AA"
	IDServizi  string `json:"id_servizi"`  // 12 digits, equal to hex(SN.ICC[5:11])
}

// DefaultHolder is the fictitious holder used when a field is left empty.
var DefaultHolder = Holder{
	GivenName:  "MARIO",
	Surname:    "ROSSI",
	FiscalCode: "RSSMRA80A01H501U",
	CardNumber: "CA00000AA",
}

// merge returns h with its empty fields taken from d.
func (h Holder) merge(d Holder) Holder {
	pick := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	return Holder{
		GivenName:  pick(h.GivenName, d.GivenName),
		Surname:    pick(h.Surname, d.Surname),
		FiscalCode: pick(h.FiscalCode, d.FiscalCode),
		CardNumber: pick(h.CardNumber, d.CardNumber),
		IDServizi:  pick(h.IDServizi, d.IDServizi),
	}
}

// validate checks the formats the card files depend on.
func (h Holder) validate() error {
	if h.GivenName == "" || h.Surname == "" || h.FiscalCode == "" {
		return errors.New("ciesim: holder names and fiscal code must not be empty")
	}
	if len(h.CardNumber) != 9 || !printableASCII(h.CardNumber) {
		return fmt.Errorf("ciesim: card number %q: want 9 printable ASCII characters", h.CardNumber)
	}
	if len(h.IDServizi) != 12 || !allDigits([]byte(h.IDServizi)) {
		return fmt.Errorf("ciesim: ID_Servizi %q: want 12 digits", h.IDServizi)
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return false
		}
	}
	return true
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// DHGroup is the card's Diffie-Hellman domain (§3.3): p of 2048 bits, q of
// 256 bits, g of order q.
type DHGroup struct {
	P, Q, G *big.Int
}

// IFDCAKey is the card's key 0x84, which verifies the host's CV
// certificates (§6). N has 2048 bits with the top bit set; D is the
// published IFD-CA private exponent of Appendix A and E = D⁻¹ mod λ(N), so
// the published exponent signs for this key exactly as on real cards.
// P1 and P2 are the primes, kept so that the key can be checked.
type IFDCAKey struct {
	N, E, D, P1, P2 *big.Int
}

// State is the persistent, synthetic key material of one simulated card:
// the test CA, the holder key 0x81 and its certificate, the chip key 0x82,
// the servizi key 0x83, the IFD-CA key 0x84, the Document Signer of the SOD,
// the DH group and SN.ICC. All of it is test material: nothing here is
// secret in the real world, but String and LogValue still print
// "[redacted]" so that it never lands in logs.
type State struct {
	Created    time.Time
	Holder     Holder
	SNICC      [12]byte // SN.ICC; bytes 5..10 are the BCD digits of Holder.IDServizi
	CAKey      *rsa.PrivateKey
	CACert     *x509.Certificate
	HolderKey  *rsa.PrivateKey // key 0x81
	HolderCert *x509.Certificate
	ChipKey    *rsa.PrivateKey // key 0x82 (DAPP internal authentication)
	ServiziKey *rsa.PrivateKey // key 0x83
	IFDCA      IFDCAKey        // key 0x84
	DSKey      *rsa.PrivateKey // Document Signer of EF.SOD
	DSCert     *x509.Certificate
	DH         DHGroup
}

// Certificate returns the holder certificate (key 0x81) of the State's own
// holder, the one a Card without a Holder override stores in EF.CertCIE.
func (s *State) Certificate() *x509.Certificate { return s.HolderCert }

// String returns a redacted description.
func (s *State) String() string { return "ciesim.State{[redacted]}" }

// GoString returns a redacted description.
func (s *State) GoString() string { return s.String() }

// LogValue returns "[redacted]" for log/slog.
func (s *State) LogValue() slog.Value { return slog.StringValue("[redacted]") }

const (
	rsaBits      = 2048
	certValidity = 5  // years, holder and Document Signer certificates
	caValidity   = 10 // years, test CA
	stateFile    = "state.json"
	dirMode      = 0o700
	fileMode     = 0o600
	testStateDir = "testdata/sim"
)

// PEM files of a saved State, next to state.json.
const (
	fileCAKey      = "ca-key.pem"
	fileCACert     = "ca-cert.pem"
	fileHolderKey  = "holder-key.pem"
	fileHolderCert = "holder-cert.pem"
	fileChipKey    = "chip-key.pem"
	fileServiziKey = "servizi-key.pem"
	fileDSKey      = "ds-key.pem"
	fileDSCert     = "ds-cert.pem"
)

// NewState generates a new card: RSA-2048 keys, the test CA and the
// certificates (valid from now−1h for five years), the IFD-CA key matching
// the published private exponent, and a fresh DH group (FIPS 186 L2048 N256).
// Empty holder fields take DefaultHolder's values; an empty IDServizi is
// drawn from rnd. It takes a few seconds.
func NewState(rnd io.Reader, now time.Time, holder Holder) (*State, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	h := holder.merge(DefaultHolder)
	var snicc [12]byte
	if _, err := io.ReadFull(rnd, snicc[:]); err != nil {
		return nil, fmt.Errorf("ciesim: drawing SN.ICC: %w", err)
	}
	if h.IDServizi == "" {
		var b [12]byte
		if _, err := io.ReadFull(rnd, b[:]); err != nil {
			return nil, fmt.Errorf("ciesim: drawing ID_Servizi: %w", err)
		}
		for i := range b {
			b[i] = '0' + b[i]%10
		}
		h.IDServizi = string(b[:])
	}
	if err := h.validate(); err != nil {
		return nil, err
	}
	s := &State{Created: now.UTC().Truncate(time.Second), Holder: h, SNICC: snicc}
	s.SNICC = withIDServizi(s.SNICC, h.IDServizi)

	keys := []**rsa.PrivateKey{&s.CAKey, &s.HolderKey, &s.ChipKey, &s.ServiziKey, &s.DSKey}
	for _, k := range keys {
		var err error
		if *k, err = rsa.GenerateKey(rnd, rsaBits); err != nil {
			return nil, fmt.Errorf("ciesim: generating RSA key: %w", err)
		}
	}
	var err error
	if s.IFDCA, err = newIFDCAKey(rnd); err != nil {
		return nil, err
	}
	var params dsa.Parameters
	if err := dsa.GenerateParameters(&params, rnd, dsa.L2048N256); err != nil {
		return nil, fmt.Errorf("ciesim: generating DH group: %w", err)
	}
	s.DH = DHGroup{P: params.P, Q: params.Q, G: params.G}

	if err := s.issueCA(); err != nil {
		return nil, err
	}
	if s.DSCert, err = s.issue(s.DSKey, dsTemplate(s.Created), "Document Signer"); err != nil {
		return nil, err
	}
	if s.HolderCert, err = s.IssueHolderCert(h); err != nil {
		return nil, err
	}
	return s, nil
}

// withIDServizi writes the 12 digits of id as 6 BCD bytes into SN.ICC[5:11],
// so that hex(SN.ICC[5:11]) == ID_Servizi (§3.1, architecture.md "Files").
func withIDServizi(sn [12]byte, id string) [12]byte {
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 6 {
		panic(fmt.Sprintf("ciesim: ID_Servizi %q not validated", id))
	}
	copy(sn[5:11], b)
	return sn
}

// newIFDCAKey builds key 0x84: two 1024-bit primes with the top two bits set
// (so n has exactly 2048 bits and its first byte is above 6A, the first byte
// of every message signed with it), chosen so that the published private
// exponent d is invertible modulo λ(n) = lcm(p1−1, p2−1); then e = d⁻¹ mod λ.
func newIFDCAKey(rnd io.Reader) (IFDCAKey, error) {
	d := new(big.Int).SetBytes(mustHex(ifdCAPrivExpHex))
	one := big.NewInt(1)
	for range 1000 {
		p1, err := rand.Prime(rnd, rsaBits/2)
		if err != nil {
			return IFDCAKey{}, fmt.Errorf("ciesim: generating IFD-CA prime: %w", err)
		}
		p2, err := rand.Prime(rnd, rsaBits/2)
		if err != nil {
			return IFDCAKey{}, fmt.Errorf("ciesim: generating IFD-CA prime: %w", err)
		}
		if p1.Cmp(p2) == 0 {
			continue
		}
		n := new(big.Int).Mul(p1, p2)
		if n.BitLen() != rsaBits {
			continue
		}
		a := new(big.Int).Sub(p1, one)
		b := new(big.Int).Sub(p2, one)
		g := new(big.Int).GCD(nil, nil, a, b)
		lambda := new(big.Int).Div(new(big.Int).Mul(a, b), g)
		e := new(big.Int).ModInverse(d, lambda)
		if e == nil {
			continue
		}
		return IFDCAKey{N: n, E: e, D: d, P1: p1, P2: p2}, nil
	}
	return IFDCAKey{}, errors.New("ciesim: no IFD-CA modulus found for the published exponent")
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// serialFor derives a certificate serial number from the parts that make a
// certificate unique, so that re-issuing the same certificate gives the same
// bytes (reproducible transcripts).
func serialFor(parts ...[]byte) *big.Int {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	sum := h.Sum(nil)
	sum[0] &= 0x7F
	return new(big.Int).SetBytes(sum[:16])
}

func (s *State) issueCA() error {
	name := pkix.Name{Country: []string{"IT"}, Organization: []string{"CIE Desktop"}, CommonName: "CIE Desktop Test CA"}
	tmpl := &x509.Certificate{
		SerialNumber:          serialFor([]byte("ca"), s.CAKey.N.Bytes()),
		Subject:               name,
		NotBefore:             s.Created.Add(-time.Hour),
		NotAfter:              s.Created.Add(-time.Hour).AddDate(caValidity, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &s.CAKey.PublicKey, s.CAKey)
	if err != nil {
		return fmt.Errorf("ciesim: creating test CA certificate: %w", err)
	}
	if s.CACert, err = x509.ParseCertificate(der); err != nil {
		return fmt.Errorf("ciesim: parsing test CA certificate: %w", err)
	}
	return nil
}

func dsTemplate(created time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:   pkix.Name{Country: []string{"IT"}, Organization: []string{"CIE Desktop"}, CommonName: "CIE Desktop Test Document Signer"},
		NotBefore: created.Add(-time.Hour),
		NotAfter:  created.Add(-time.Hour).AddDate(certValidity, 0, 0),
		KeyUsage:  x509.KeyUsageDigitalSignature,
	}
}

// issue signs tmpl for key with the test CA.
func (s *State) issue(key *rsa.PrivateKey, tmpl *x509.Certificate, what string) (*x509.Certificate, error) {
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = serialFor([]byte(what), key.N.Bytes())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.CACert, &key.PublicKey, s.CAKey)
	if err != nil {
		return nil, fmt.Errorf("ciesim: creating %s certificate: %w", what, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ciesim: parsing %s certificate: %w", what, err)
	}
	return c, nil
}

// Object identifiers of the holder certificate's subject attributes.
var (
	oidCountry      = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidSurname      = asn1.ObjectIdentifier{2, 5, 4, 4}
	oidGivenName    = asn1.ObjectIdentifier{2, 5, 4, 42}
	oidSerialNumber = asn1.ObjectIdentifier{2, 5, 4, 5}
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
)

// HolderSubject returns the DER subject of the holder certificate in the
// order of architecture.md: C=IT, SN=<surname>, GN=<given name>,
// serialNumber=TINIT-<fiscal code>, CN=<fiscal code>/<ID_Servizi>.
func HolderSubject(h Holder) ([]byte, error) {
	rdn := func(oid asn1.ObjectIdentifier, v string) pkix.RelativeDistinguishedNameSET {
		return pkix.RelativeDistinguishedNameSET{{Type: oid, Value: v}}
	}
	seq := pkix.RDNSequence{
		rdn(oidCountry, "IT"),
		rdn(oidSurname, h.Surname),
		rdn(oidGivenName, h.GivenName),
		rdn(oidSerialNumber, "TINIT-"+h.FiscalCode),
		rdn(oidCommonName, h.FiscalCode+"/"+h.IDServizi),
	}
	b, err := asn1.Marshal(seq)
	if err != nil {
		return nil, fmt.Errorf("ciesim: encoding holder subject: %w", err)
	}
	return b, nil
}

// IssueHolderCert issues the certificate of key 0x81 for holder h with the
// test CA: subject as HolderSubject, digitalSignature + nonRepudiation,
// clientAuth, valid from Created−1h for five years. The result depends only
// on the State and h, so re-issuing gives the same bytes.
func (s *State) IssueHolderCert(h Holder) (*x509.Certificate, error) {
	subject, err := HolderSubject(h)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serialFor([]byte("holder"), []byte(h.FiscalCode), []byte(h.IDServizi), []byte(h.GivenName), []byte(h.Surname), s.HolderKey.N.Bytes()),
		RawSubject:   subject,
		NotBefore:    s.Created.Add(-time.Hour),
		NotAfter:     s.Created.Add(-time.Hour).AddDate(certValidity, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return s.issue(s.HolderKey, tmpl, "holder")
}

// stateJSON is the non-PEM part of a saved State.
type stateJSON struct {
	Comment string    `json:"comment"`
	Created time.Time `json:"created"`
	Holder  Holder    `json:"holder"`
	SNICC   string    `json:"sn_icc"`
	DH      struct {
		P string `json:"p"`
		Q string `json:"q"`
		G string `json:"g"`
	} `json:"dh"`
	IFDCA struct {
		N  string `json:"n"`
		E  string `json:"e"`
		D  string `json:"d"`
		P1 string `json:"p1"`
		P2 string `json:"p2"`
	} `json:"ifd_ca"`
}

func hexInt(i *big.Int) string { return hex.EncodeToString(i.Bytes()) }

func parseHexInt(s, what string) (*big.Int, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("ciesim: parsing %s: not a hex number", what)
	}
	return new(big.Int).SetBytes(b), nil
}

// Save writes the State into dir (created with mode 0700 if missing) as
// state.json plus PEM files, each with mode 0600, each written atomically.
func (s *State) Save(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("ciesim: creating state directory: %w", err)
	}
	var j stateJSON
	j.Comment = "Synthetic test card of CIE Desktop (internal/ciesim). Test keys only."
	j.Created, j.Holder, j.SNICC = s.Created, s.Holder, hex.EncodeToString(s.SNICC[:])
	j.DH.P, j.DH.Q, j.DH.G = hexInt(s.DH.P), hexInt(s.DH.Q), hexInt(s.DH.G)
	j.IFDCA.N, j.IFDCA.E, j.IFDCA.D = hexInt(s.IFDCA.N), hexInt(s.IFDCA.E), hexInt(s.IFDCA.D)
	j.IFDCA.P1, j.IFDCA.P2 = hexInt(s.IFDCA.P1), hexInt(s.IFDCA.P2)
	js, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("ciesim: encoding state: %w", err)
	}
	files := map[string][]byte{stateFile: append(js, '\n')}
	for name, k := range map[string]*rsa.PrivateKey{
		fileCAKey: s.CAKey, fileHolderKey: s.HolderKey, fileChipKey: s.ChipKey,
		fileServiziKey: s.ServiziKey, fileDSKey: s.DSKey,
	} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return fmt.Errorf("ciesim: encoding %s: %w", name, err)
		}
		files[name] = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	for name, c := range map[string]*x509.Certificate{fileCACert: s.CACert, fileHolderCert: s.HolderCert, fileDSCert: s.DSCert} {
		files[name] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	for name, b := range files {
		if err := writeFileAtomic(filepath.Join(dir, name), b); err != nil {
			return err
		}
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("ciesim: writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(fileMode); err != nil {
		f.Close()
		return fmt.Errorf("ciesim: writing %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("ciesim: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ciesim: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ciesim: writing %s: %w", path, err)
	}
	return nil
}

// ErrNoState is wrapped by LoadState when dir holds no saved state.
var ErrNoState = errors.New("no saved card state")

// LoadState reads a State written by Save and checks that its parts belong
// together (certificates match their keys and chain to the test CA, the
// IFD-CA exponents are inverse, ID_Servizi matches SN.ICC).
func LoadState(dir string) (*State, error) {
	js, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("ciesim: loading state from %s: %w", dir, ErrNoState)
	}
	if err != nil {
		return nil, fmt.Errorf("ciesim: loading state: %w", err)
	}
	var j stateJSON
	if err := json.Unmarshal(js, &j); err != nil {
		return nil, fmt.Errorf("ciesim: parsing %s: %w", stateFile, err)
	}
	s := &State{Created: j.Created, Holder: j.Holder}
	sn, err := hex.DecodeString(j.SNICC)
	if err != nil || len(sn) != len(s.SNICC) {
		return nil, fmt.Errorf("ciesim: parsing %s: bad sn_icc", stateFile)
	}
	copy(s.SNICC[:], sn)
	ints := []struct {
		dst  **big.Int
		src  string
		what string
	}{
		{&s.DH.P, j.DH.P, "dh.p"}, {&s.DH.Q, j.DH.Q, "dh.q"}, {&s.DH.G, j.DH.G, "dh.g"},
		{&s.IFDCA.N, j.IFDCA.N, "ifd_ca.n"}, {&s.IFDCA.E, j.IFDCA.E, "ifd_ca.e"}, {&s.IFDCA.D, j.IFDCA.D, "ifd_ca.d"},
		{&s.IFDCA.P1, j.IFDCA.P1, "ifd_ca.p1"}, {&s.IFDCA.P2, j.IFDCA.P2, "ifd_ca.p2"},
	}
	for _, x := range ints {
		if *x.dst, err = parseHexInt(x.src, x.what); err != nil {
			return nil, err
		}
	}
	for name, dst := range map[string]**rsa.PrivateKey{
		fileCAKey: &s.CAKey, fileHolderKey: &s.HolderKey, fileChipKey: &s.ChipKey,
		fileServiziKey: &s.ServiziKey, fileDSKey: &s.DSKey,
	} {
		if *dst, err = readKey(filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	for name, dst := range map[string]**x509.Certificate{fileCACert: &s.CACert, fileHolderCert: &s.HolderCert, fileDSCert: &s.DSCert} {
		if *dst, err = readCert(filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("ciesim: loading state from %s: %w", dir, err)
	}
	return s, nil
}

// check verifies that the parts of s belong together.
func (s *State) check() error {
	if err := s.Holder.validate(); err != nil {
		return err
	}
	if hex.EncodeToString(s.SNICC[5:11]) != s.Holder.IDServizi {
		return errors.New("ID_Servizi does not match SN.ICC[5:11]")
	}
	pairs := []struct {
		c *x509.Certificate
		k *rsa.PrivateKey
	}{{s.CACert, s.CAKey}, {s.HolderCert, s.HolderKey}, {s.DSCert, s.DSKey}}
	for _, p := range pairs {
		pub, ok := p.c.PublicKey.(*rsa.PublicKey)
		if !ok || !pub.Equal(&p.k.PublicKey) {
			return fmt.Errorf("certificate %q does not match its key", p.c.Subject.CommonName)
		}
		if err := p.c.CheckSignatureFrom(s.CACert); err != nil {
			return fmt.Errorf("certificate %q: %w", p.c.Subject.CommonName, err)
		}
	}
	k := s.IFDCA
	if k.N.BitLen() != rsaBits || new(big.Int).Mul(k.P1, k.P2).Cmp(k.N) != 0 {
		return errors.New("IFD-CA modulus does not match its primes")
	}
	m := big.NewInt(0x6A)
	if new(big.Int).Exp(new(big.Int).Exp(m, k.E, k.N), k.D, k.N).Cmp(m) != 0 {
		return errors.New("IFD-CA exponents are not inverse")
	}
	if s.DH.P.BitLen() != 2048 || s.DH.Q.BitLen() != 256 {
		return errors.New("DH group is not 2048/256 bits")
	}
	return nil
}

func readPEM(path, typ string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ciesim: loading state: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != typ {
		return nil, fmt.Errorf("ciesim: loading %s: no PEM %s block", path, typ)
	}
	return blk.Bytes, nil
}

func readKey(path string) (*rsa.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("ciesim: parsing %s: %w", path, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("ciesim: parsing %s: not an RSA key", path)
	}
	return rk, nil
}

func readCert(path string) (*x509.Certificate, error) {
	der, err := readPEM(path, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ciesim: parsing %s: %w", path, err)
	}
	return c, nil
}

// LoadOrCreateState loads the State saved in dir, or creates one (crypto/rand,
// the current time, DefaultHolder) and saves it there when dir holds none.
func LoadOrCreateState(dir string) (*State, error) {
	s, err := LoadState(dir)
	if err == nil || !errors.Is(err, ErrNoState) {
		return s, err
	}
	if s, err = NewState(rand.Reader, time.Now(), Holder{}); err != nil {
		return nil, err
	}
	if err := s.Save(dir); err != nil {
		return nil, err
	}
	return s, nil
}

// TestState loads the synthetic card committed under testdata/sim at the
// module root (found by walking up from the working directory to go.mod),
// for fast, reproducible tests of any package. Its certificates are valid
// for five years from the date in testdata/sim/state.json.
func TestState() (*State, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("ciesim: finding module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return LoadState(filepath.Join(dir, filepath.FromSlash(testStateDir)))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, errors.New("ciesim: finding module root: no go.mod above the working directory")
		}
		dir = parent
	}
}
