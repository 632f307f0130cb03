package sign

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/crypto/ocsp"
)

// maxOCSPResponse bounds the answer read from an OCSP responder.
const maxOCSPResponse = 1 << 20

// revocation asks the OCSP responder named in the certificate (RFC 6960),
// only when the caller allowed going online.
func (v *verifier) revocation(ctx context.Context, cert *x509.Certificate, chain []*x509.Certificate) Finding {
	if !v.opts.Online {
		return notChecked("offline")
	}
	var issuer *x509.Certificate
	if len(chain) > 1 {
		issuer = chain[1]
	} else {
		issuer = v.issuerOf(cert)
	}
	if issuer == nil {
		return unknown("the issuer's certificate is not available to ask OCSP")
	}
	if len(cert.OCSPServer) == 0 {
		return notChecked("the certificate names no OCSP responder")
	}
	resp, err := v.askOCSP(ctx, cert.OCSPServer[0], cert, issuer)
	if err != nil {
		return unknown(err.Error())
	}
	now := v.opts.now()
	if !resp.NextUpdate.IsZero() && now.After(resp.NextUpdate) {
		return unknown(fmt.Sprintf("the OCSP answer is stale (next update %s)", resp.NextUpdate.Format(time.DateTime)))
	}
	switch resp.Status {
	case ocsp.Good:
		return ok(fmt.Sprintf("good (OCSP %s, %s)", cert.OCSPServer[0], resp.ProducedAt.UTC().Format(time.DateTime+" MST")))
	case ocsp.Revoked:
		return failed(fmt.Sprintf("the certificate was revoked on %s (OCSP %s)", resp.RevokedAt.UTC().Format(time.DateTime+" MST"), cert.OCSPServer[0]))
	}
	return unknown("the OCSP responder does not know the certificate")
}

// issuerOf finds the certificate that signed cert among those known.
func (v *verifier) issuerOf(cert *x509.Certificate) *x509.Certificate {
	for _, c := range append(append([]*x509.Certificate{}, v.certs...), v.opts.Intermediates...) {
		if bytes.Equal(c.RawSubject, cert.RawIssuer) && cert.CheckSignatureFrom(c) == nil {
			return c
		}
	}
	return nil
}

// askOCSP posts an OCSP request and checks the answer's signature (by the
// issuer or a responder it delegated).
func (v *verifier) askOCSP(ctx context.Context, url string, cert, issuer *x509.Certificate) (*ocsp.Response, error) {
	req, err := ocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		return nil, fmt.Errorf("building the OCSP request: %w", err)
	}
	client := v.opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 15 * time.Second}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req))
	if err != nil {
		return nil, fmt.Errorf("asking OCSP %s: %w", url, err)
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	hreq.Header.Set("Accept", "application/ocsp-response")
	hresp, err := client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("asking OCSP %s: %w", url, err)
	}
	defer hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("asking OCSP %s: HTTP %s", url, hresp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(hresp.Body, maxOCSPResponse+1))
	if err != nil {
		return nil, fmt.Errorf("reading the OCSP answer: %w", err)
	}
	if len(body) > maxOCSPResponse {
		return nil, errors.New("the OCSP answer is too large")
	}
	resp, err := ocsp.ParseResponseForCert(body, cert, issuer)
	if err != nil {
		return nil, fmt.Errorf("the OCSP answer from %s is not acceptable: %w", url, err)
	}
	return resp, nil
}
