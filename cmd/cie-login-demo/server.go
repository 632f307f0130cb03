package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ciedesktop/cie-desktop/cie"
)

// service is the login service: an HTTPS handler that reads the client
// certificate of the TLS connection and greets its holder when it chains
// to one of the trusted CAs.
type service struct {
	roots *x509.CertPool
	log   *slog.Logger
	now   func() time.Time

	mu         sync.Mutex
	handshakes map[string]time.Time // remote address → when its ClientHello arrived
}

func newService(roots *x509.CertPool, log *slog.Logger) *service {
	return &service{roots: roots, log: log, now: time.Now, handshakes: map[string]time.Time{}}
}

// tlsConfig returns the server's TLS configuration. The client certificate
// is requested, not required, and not verified by crypto/tls: the handler
// verifies it, so that a browser without a CIE, or with a certificate of
// another CA, gets a page that says so instead of a TLS alert. The CA
// names go into the CertificateRequest, so that browsers offer only CIE
// certificates.
//
// The CIE signs with PKCS#1 v1.5 only, and TLS 1.3 forbids PKCS#1 v1.5 in
// CertificateVerify (RFC 8446 §4.4.3): with tls13 false the server stops at
// TLS 1.2, where rsa_pkcs1_sha256 is allowed.
func (s *service) tlsConfig(cert tls.Certificate, tls13 bool) *tls.Config {
	max := uint16(tls.VersionTLS12)
	if tls13 {
		max = tls.VersionTLS13
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   max,
		ClientAuth:   tls.RequestClientCert,
		ClientCAs:    s.roots,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			s.mu.Lock()
			s.handshakes[hello.Conn.RemoteAddr().String()] = s.now()
			s.mu.Unlock()
			return nil, nil
		},
	}
}

// handshakeStart returns when the connection's ClientHello arrived.
func (s *service) handshakeStart(remote string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.handshakes[remote]
	return t, ok
}

// connState forgets connections when they close.
func (s *service) connState(c net.Conn, st http.ConnState) {
	if st == http.StateClosed || st == http.StateHijacked {
		s.mu.Lock()
		delete(s.handshakes, c.RemoteAddr().String())
		s.mu.Unlock()
	}
}

// login is what the page shows about a TLS connection.
type login struct {
	Status      int
	Title       string
	Message     string
	Name        string
	FiscalCode  string
	IDServizi   string
	CertSerial  string
	Issuer      string
	Subject     string
	ValidUntil  string
	TLSVersion  string
	Cipher      string
	HandshakeMS int64
}

// check decides what a connection's client certificate is worth.
func (s *service) check(st *tls.ConnectionState) login {
	l := login{TLSVersion: tls.VersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite)}
	if len(st.PeerCertificates) == 0 {
		l.Status = http.StatusUnauthorized
		l.Title = "No certificate"
		l.Message = "Your browser sent no certificate. Put your CIE on the reader, check that the CIE module is " +
			"registered in this browser (cie browser register), and reload the page."
		return l
	}
	leaf := st.PeerCertificates[0]
	l.Subject, l.Issuer = leaf.Subject.String(), leaf.Issuer.String()
	inter := x509.NewCertPool()
	for _, c := range st.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         s.roots,
		Intermediates: inter,
		CurrentTime:   s.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		l.Status = http.StatusForbidden
		l.Title = "Certificate not accepted"
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			l.Message = "The certificate your browser sent was not issued by the CIE certification authority this " +
				"service trusts, so it cannot log you in. Choose the certificate of your CIE."
		} else {
			l.Message = "The certificate your browser sent cannot log you in: " + err.Error() + "."
		}
		return l
	}
	h := cie.HolderFromCertificate(leaf)
	l.Status = http.StatusOK
	l.Title = "Logged in with CIE"
	l.Name = strings.TrimSpace(h.GivenName + " " + h.Surname)
	if l.Name == "" {
		l.Name = leaf.Subject.CommonName
	}
	l.FiscalCode = h.FiscalCode
	if _, id, ok := strings.Cut(leaf.Subject.CommonName, "/"); ok {
		l.IDServizi = id
	}
	l.CertSerial = fmt.Sprintf("%X", leaf.SerialNumber)
	l.ValidUntil = leaf.NotAfter.UTC().Format("2006-01-02")
	return l
}

var page = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font-family:sans-serif;margin:3em auto;max-width:40em;color:#1a1a1a}
h1{color:{{if eq .Status 200}}#0b6e2e{{else}}#a31515{{end}}}
dt{font-weight:bold;margin-top:.6em} dd{margin-left:0;font-family:monospace}
footer{margin-top:2em;color:#666;font-size:.85em}
</style></head><body>
<p>CIE Desktop — level 3 login demo (TLS client certificate)</p>
{{if eq .Status 200}}<h1 id="greeting">Benvenuto, {{.Name}}!</h1>
<p>You are logged in with your CIE (Carta d'Identità Elettronica).</p>
<dl>
<dt>Holder</dt><dd id="holder">{{.Name}}</dd>
<dt>Codice fiscale</dt><dd id="fiscal-code">{{.FiscalCode}}</dd>
<dt>Card serial (ID Servizi)</dt><dd id="card-serial">{{.IDServizi}}</dd>
<dt>Certificate serial</dt><dd>{{.CertSerial}}</dd>
<dt>Certificate valid until</dt><dd>{{.ValidUntil}}</dd>
</dl>
{{else}}<h1 id="refused">{{.Title}}</h1>
<p id="reason">{{.Message}}</p>
{{if .Subject}}<dl><dt>Certificate</dt><dd>{{.Subject}}</dd><dt>Issued by</dt><dd>{{.Issuer}}</dd></dl>{{end}}
{{end}}
<footer id="tls">{{.TLSVersion}}, {{.Cipher}}{{if .HandshakeMS}}, handshake {{.HandshakeMS}} ms{{end}}</footer>
</body></html>
`))

// ServeHTTP answers every path with the login page of the connection.
func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		http.Error(w, "HTTPS only", http.StatusBadRequest)
		return
	}
	l := s.check(r.TLS)
	if start, ok := s.handshakeStart(r.RemoteAddr); ok {
		l.HandshakeMS = s.now().Sub(start).Milliseconds()
	}
	s.log.Info("login", "status", l.Status, "holder", l.Name, "fiscal_code", l.FiscalCode, "subject", l.Subject,
		"tls", l.TLSVersion, "cipher", l.Cipher, "path", r.URL.Path, "user_agent", r.UserAgent())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(l.Status)
	if err := page.Execute(w, l); err != nil {
		s.log.Warn("writing the page", "err", err)
	}
}

// loadRoots reads the PEM certificates of the trusted CAs.
func loadRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("reading the CA file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// serverCertificate loads the server certificate chain and key, or, when
// neither file exists, creates them: a local CA (self-signed, written to
// caPath for browsers' trust stores) and an ECDSA server certificate for
// 127.0.0.1, ::1 and localhost that it issues. The chain file holds the
// server certificate then the CA; the key file has mode 0600. A browser
// refuses a CA certificate as a server certificate (Firefox:
// MOZILLA_PKIX_ERROR_CA_CERT_USED_AS_END_ENTITY), hence the two.
func serverCertificate(certPath, keyPath, caPath string, now time.Time) (tls.Certificate, error) {
	_, cerr := os.Stat(certPath)
	_, kerr := os.Stat(keyPath)
	if cerr == nil || kerr == nil {
		c, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("loading the server certificate: %w", err)
		}
		return c, nil
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating the CA key: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating the server key: %w", err)
	}
	ca := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "CIE Desktop login demo CA", Organization: []string{"CIE Desktop"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	leaf := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1", Organization: []string{"CIE Desktop login demo"}},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(30 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, c := range []*x509.Certificate{ca, leaf} {
		if c.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); err != nil {
			return tls.Certificate{}, fmt.Errorf("generating a certificate serial: %w", err)
		}
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("creating the CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("creating the CA certificate: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("creating the server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("encoding the server key: %w", err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("writing the server key: %w", err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), caPEM...)
	if err := os.WriteFile(certPath, chain, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("writing the server certificate: %w", err)
	}
	if err := os.WriteFile(caPath, caPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("writing the CA certificate: %w", err)
	}
	return tls.LoadX509KeyPair(certPath, keyPath)
}
