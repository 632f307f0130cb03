// Command cie-login-demo is a local "Entra con CIE" login service for the
// demo and the browser tests: HTTPS on a loopback address that asks the
// browser for a client certificate, verifies that it chains to the
// configured CA (the cie-sim test CA in the demo and tests, the CIE CA in
// real use), and greets the holder with the name, codice fiscale and card
// serial (ID Servizi) read from the certificate. A browser without a
// certificate, or with one of another CA, gets a page that says so, not a
// TLS alert.
//
// Usage:
//
//	cie-login-demo --ca ca.pem [--listen 127.0.0.1:8443] [--server-cert F --server-key F --server-ca F] [--tls13]
//
// The server certificate and key are created, for 127.0.0.1 and localhost
// and issued by a local CA written to --server-ca, when neither file
// exists; add that CA to the browser's trust store. The service offers TLS 1.2 only unless --tls13 is
// given: the CIE signs with PKCS#1 v1.5, which TLS 1.3 does not allow for
// client certificates. When it listens it prints
// "listening on https://ADDR/" on standard output; it logs each request
// (holder, TLS version) on standard error and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cie-login-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		listen   = fs.String("listen", "127.0.0.1:8443", "address to listen on (port 0: any free port)")
		caFile   = fs.String("ca", "", "PEM file of the CA(s) client certificates must chain to (required)")
		certFile = fs.String("server-cert", "login-demo-server.pem", "server certificate chain (PEM); created with the key when both are missing")
		keyFile  = fs.String("server-key", "login-demo-server.key", "server private key (PEM)")
		caOut    = fs.String("server-ca", "login-demo-ca.pem", "where a created server certificate's CA is written, for the browser's trust store")
		tls13    = fs.Bool("tls13", false, "also offer TLS 1.3 (a CIE cannot log in over it: its key signs PKCS#1 v1.5 only)")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *caFile == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "cie-login-demo: --ca FILE is required, and no arguments are taken")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	roots, err := loadRoots(*caFile)
	if err != nil {
		fmt.Fprintln(stderr, "cie-login-demo:", err)
		return 1
	}
	cert, err := serverCertificate(*certFile, *keyFile, *caOut, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "cie-login-demo:", err)
		return 1
	}
	svc := newService(roots, log)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "cie-login-demo: listening:", err)
		return 1
	}
	srv := &http.Server{
		Handler:           svc,
		TLSConfig:         svc.tlsConfig(cert, *tls13),
		ConnState:         svc.connState,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelInfo),
	}
	fmt.Fprintf(stdout, "listening on https://%s/\n", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-done:
		fmt.Fprintln(stderr, "cie-login-demo:", err)
		return 1
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	return 0
}
